-- A handoff's two steps are recorded apart, so a retry does not repeat one that succeeded:
-- opened_at is when the conversation was given to a person (Chatwoot: toggled open);
-- note_tries counts attempts at the private note (counted before each call, so that after a
-- lost answer the next attempt looks for the note before posting it again); noted_at is when
-- the note was left. A draft whose conversation was handed over gets status 'handed_off'.
ALTER TABLE handoffs ADD COLUMN opened_at BIGINT;
ALTER TABLE handoffs ADD COLUMN note_tries BIGINT NOT NULL DEFAULT 0;
ALTER TABLE handoffs ADD COLUMN noted_at BIGINT;
