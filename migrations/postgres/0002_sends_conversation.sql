-- Sends are delivered in order within a conversation: the claim looks for earlier unsent ones.
CREATE INDEX sends_conversation ON sends (shop_id, conversation_id, id);
