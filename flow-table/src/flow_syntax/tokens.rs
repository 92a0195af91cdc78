//! How ovs-ofctl cuts a flow into pieces: `key`, `key=value`, `key:value` or `key(value)`,
//! separated by commas or white space.
//!
//! The rules, as ovs-ofctl applies them (learnt by running it): a key ends at the first of
//! `:=(`, a comma or white space; after `:` or `=` the value runs to the next comma or white
//! space outside parentheses; after `(` it runs to the matching `)` (or the end of the text,
//! when there is none), and the next piece may start right after the `)`. Empty pieces (`,,`)
//! are skipped.

/// One piece of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Piece<'a> {
    /// Byte offset of the piece in the whole flow text.
    pub pos: usize,
    /// The key (never contains a separator).
    pub key: &'a str,
    /// The value, empty when there is none.
    pub value: &'a str,
    /// True for `key(value)`.
    pub parens: bool,
    /// The whole piece as written, for error messages.
    pub text: &'a str,
}

fn is_sep(c: char) -> bool {
    matches!(c, ',' | ' ' | '\t' | '\r' | '\n')
}

/// Cuts `s` (which starts at byte `base` of the flow) into pieces.
pub(super) fn pieces(s: &str, base: usize) -> Vec<Piece<'_>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if is_sep(b[i] as char) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_sep(b[i] as char) && !matches!(b[i], b':' | b'=' | b'(') {
            i += 1;
        }
        let key = &s[start..i];
        let (value, parens) = match b.get(i) {
            Some(b'(') => {
                i += 1;
                let vstart = i;
                let mut depth = 0usize;
                while i < b.len() {
                    match b[i] {
                        b'(' => depth += 1,
                        b')' if depth == 0 => break,
                        b')' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                let v = &s[vstart..i];
                if i < b.len() {
                    i += 1; // the ')'
                }
                (v, true)
            }
            Some(b':' | b'=') => {
                i += 1;
                let vstart = i;
                let mut depth = 0usize;
                while i < b.len() {
                    match b[i] {
                        b'(' => depth += 1,
                        b')' if depth > 0 => depth -= 1,
                        c if depth == 0 && is_sep(c as char) => break,
                        _ => {}
                    }
                    i += 1;
                }
                (&s[vstart..i], false)
            }
            _ => ("", false),
        };
        out.push(Piece {
            pos: base + start,
            key,
            value,
            parens,
            text: &s[start..i],
        });
    }
    out
}

/// Where the actions start: right after the first `actions=` anywhere in the text, as
/// ovs-ofctl looks for it (so `xactions=1` is the match `x` and the actions `1`).
pub(super) fn find_actions(s: &str) -> Option<usize> {
    s.find("actions=")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(s: &str) -> Vec<(&str, &str)> {
        pieces(s, 0).iter().map(|p| (p.key, p.value)).collect()
    }

    #[test]
    fn pieces_as_ovs_ofctl_cuts_them() {
        assert_eq!(
            kv("ip, nw_src:1.2.3.4 tcp_dst=80,,x"),
            [
                ("ip", ""),
                ("nw_src", "1.2.3.4"),
                ("tcp_dst", "80"),
                ("x", "")
            ]
        );
        assert_eq!(
            kv("resubmit(1,2)output:3,resubmit( 1, 2)"),
            [("resubmit", "1,2"), ("output", "3"), ("resubmit", " 1, 2")]
        );
        assert_eq!(kv("resubmit(1,2"), [("resubmit", "1,2")]);
        assert_eq!(kv("output:(1,2),3"), [("output", "(1,2)"), ("3", "")]);
        assert_eq!(kv("output:1)"), [("output", "1)")]);
        assert_eq!(kv("(2)"), [("", "2")]);
        assert_eq!(kv("output: 1"), [("output", ""), ("1", "")]);
        let p = pieces("a, set_field:1->ip_dst", 10);
        assert_eq!((p[1].pos, p[1].text), (13, "set_field:1->ip_dst"));
        assert!(kv(" ,\t").is_empty());
        assert_eq!(find_actions("xactions=1"), Some(1));
    }
}
