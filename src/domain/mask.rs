//! Privacy: what of a receiver's name, phone and address a role may see, and the masks that hide
//! the rest (part-time staff never see receiver data; agents and above do).

use super::{event::Receiver, role::Role};

/// A name with all but its first character hidden.
#[must_use]
pub fn mask_name(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => std::iter::once(first).chain(c.map(|_| '*')).collect(),
        None => String::new(),
    }
}

/// A phone number with its middle hidden (`138****0000`); short numbers entirely.
#[must_use]
pub fn mask_phone(s: &str) -> String {
    let d: Vec<char> = s.chars().collect();
    if d.len() >= 11 {
        format!("{}****{}", d[..3].iter().collect::<String>(), d[d.len() - 4..].iter().collect::<String>())
    } else {
        "****".into()
    }
}

/// An address cut after its first six characters (province and city).
#[must_use]
pub fn mask_address(s: &str) -> String {
    format!("{}****", s.chars().take(6).collect::<String>())
}

/// `text` with every occurrence of the receiver's name, phone and address masked, keeping the
/// length in characters (the first character of a name, the first 3 and last 4 digits of a
/// phone, the first 6 characters of an address stay).
#[must_use]
pub fn mask_in_text(text: &str, receiver: Option<&Receiver>) -> String {
    let Some(r) = receiver else { return text.to_owned() };
    let mut out = text.to_owned();
    for (value, keep_head, keep_tail) in
        [(r.name.as_deref(), 1, 0), (r.phone.as_deref(), 3, 4), (r.address.as_deref(), 6, 0)]
    {
        let Some(v) = value.filter(|v| v.chars().count() >= 2) else { continue };
        let n = v.chars().count();
        let masked: String = v
            .chars()
            .enumerate()
            .map(|(i, ch)| if i < keep_head.min(n - 1) || i + keep_tail >= n && keep_tail > 0 { ch } else { '*' })
            .collect();
        out = out.replace(v, &masked);
    }
    out
}

/// Whether `role` may see a receiver's name, phone and address.
#[must_use]
pub fn may_see_receiver(role: Role) -> bool {
    role >= Role::Agent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_what_they_promise() {
        // (input, name, phone, address); Latin letters stand in for the Chinese of real data.
        let table = [
            ("Li", "L*", "****", "Li****"),
            ("", "", "****", "****"),
            ("13800001234", "1**********", "138****1234", "138000****"),
            ("TestProvince Road 1", "T******************", "Tes****ad 1", "TestPr****"),
        ];
        for (input, name, phone, address) in table {
            assert_eq!(mask_name(input), name, "name {input:?}");
            assert_eq!(mask_phone(input), phone, "phone {input:?}");
            assert_eq!(mask_address(input), address, "address {input:?}");
        }
    }

    #[test]
    fn receiver_data_in_text_is_masked_in_place() {
        let r = Receiver {
            name: Some("ZhangSan".into()),
            phone: Some("13800001234".into()),
            address: Some("TestProvince Road 1".into()),
        };
        let table = [
            ("I am ZhangSan", "I am Z*******"),
            ("call 13800001234", "call 138****1234"),
            ("ship to TestProvince Road 1 please", "ship to TestPr************* please"),
            ("nothing personal", "nothing personal"),
        ];
        for (text, want) in table {
            assert_eq!(mask_in_text(text, Some(&r)), want, "{text:?}");
            assert_eq!(mask_in_text(text, Some(&r)).chars().count(), text.chars().count());
            assert_eq!(mask_in_text(text, None), text);
        }
    }

    #[test]
    fn only_agents_and_above_see_receivers() {
        let seen: Vec<bool> = Role::ALL.iter().map(|r| may_see_receiver(*r)).collect();
        assert_eq!(seen, [false, true, true, true]);
    }
}
