//! Durations on the command line: `90`, `90s`, `10m`, `12h`, `30d`.

/// Parses a duration into whole seconds. A bare number is seconds.
pub fn parse_secs(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let scale: u32 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{text}` is not a duration like 90s, 10m, 12h or 30d"
            ))
        }
    };
    let value: u32 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 10m, 12h or 30d"))?;
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// Parses a token lifetime: a duration of at least one second.
pub fn parse_ttl(text: &str) -> Result<u32, String> {
    match parse_secs(text)? {
        0 => Err("a token must live at least 1s".to_owned()),
        secs => Ok(secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_secs("90"), Ok(90));
        assert_eq!(parse_secs("90s"), Ok(90));
        assert_eq!(parse_secs("10m"), Ok(600));
        assert_eq!(parse_secs("12h"), Ok(43_200));
        assert_eq!(parse_secs("30d"), Ok(2_592_000));
        assert_eq!(parse_secs("0"), Ok(0));
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in [
            "",
            "m",
            "10x",
            "-5m",
            "1.5h",
            "10 m",
            "1h30m",
            "99999999999",
            "50000d",
        ] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
        assert!(parse_ttl("0s").is_err());
        assert_eq!(parse_ttl("1s"), Ok(1));
    }
}
