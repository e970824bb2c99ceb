//! Several settings read as one variable. On Spin every `variables::get` is a host call, and a
//! request's cost follows its host calls far more than the Rust inside it (BENCHMARKS.md, "Speed
//! on real Spin"), so a component whose every request needs several application variables
//! declares one component variable whose template joins them, one a line (`spin.toml`:
//! `validate_settings = "{{ token_issuer }}\n{{ verify_cache_key }}\n{{ public_keys }}"`), and
//! splits the value with [`lines`]. Operators still set each application variable on its own.
//!
//! Only the last setting may hold line breaks (a key set can); the others are single-line values
//! (an issuer, a secret, a URL). A value that breaks that rule shifts the later settings and
//! fails their parse (a key set that does not read, an issuer that never matches): a closed
//! failure, never a looser check.

/// The first `N - 1` lines of `text`, then the rest (line breaks included). `None` when `text`
/// has fewer than `N - 1` line breaks, as when the template lost a setting.
pub fn lines<const N: usize>(text: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let Some((last, firsts)) = out.split_last_mut() else {
        return Some(out);
    };
    let mut rest = text;
    for slot in firsts {
        let (line, tail) = rest.split_once('\n')?;
        *slot = line;
        rest = tail;
    }
    *last = rest;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::lines;

    #[test]
    fn splits_the_first_lines_and_keeps_the_rest_whole() {
        let text = "license-edge\nsecret\n{\"keys\": [\n]}";
        assert_eq!(
            lines::<3>(text),
            Some(["license-edge", "secret", "{\"keys\": [\n]}"])
        );
    }

    #[test]
    fn empty_settings_stay_empty() {
        assert_eq!(lines::<3>("\n\n"), Some(["", "", ""]));
        assert_eq!(lines::<1>(""), Some([""]));
        assert_eq!(lines::<0>("anything"), Some([]));
    }

    #[test]
    fn rejects_a_value_with_too_few_lines() {
        assert_eq!(lines::<3>("license-edge\nsecret"), None);
        assert_eq!(lines::<2>("no line break"), None);
    }

    #[test]
    fn a_line_break_in_an_early_setting_shifts_the_later_ones() {
        // The issuer "a\nb" makes the cache secret "b" and the key set "secret\nkeys": the key
        // set no longer reads, so validation fails instead of checking less.
        assert_eq!(
            lines::<3>("a\nb\nsecret\nkeys"),
            Some(["a", "b", "secret\nkeys"])
        );
    }
}
