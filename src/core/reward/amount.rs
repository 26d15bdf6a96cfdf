//! Token amounts: integers of base units (`10^-decimals` of a token), written as exact decimal
//! strings. No floating point ever touches an amount.

/// Most decimals a token may have: 10^30 base units per token still leaves room for a supply of
/// 10^8 tokens in a `u128`.
pub const MAX_DECIMALS: u8 = 30;

fn pow10(decimals: u8) -> u128 {
    10u128.pow(u32::from(decimals))
}

/// Parses a decimal amount of tokens (`"10000"`, `"0.5"`, `"1_000_000"`) into base units.
/// Rejects signs, exponents, more fractional digits than `decimals`, and overflow.
pub fn parse(s: &str, decimals: u8) -> Result<u128, String> {
    let t = s.trim().replace('_', "");
    if t.is_empty() {
        return Err("empty amount".into());
    }
    if t.starts_with('-') {
        return Err(format!("amount {s:?} is negative"));
    }
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, f),
        None => (t.as_str(), ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(format!("{s:?} is not an amount"));
    }
    if !int.bytes().all(|c| c.is_ascii_digit()) || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "{s:?} is not a decimal amount (digits, optionally one '.')"
        ));
    }
    if frac.len() > usize::from(decimals) {
        return Err(format!(
            "amount {s:?} has more than {decimals} decimal places"
        ));
    }
    let overflow = || format!("amount {s:?} is too large");
    let mut v: u128 = 0;
    for c in int.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(c - b'0')))
            .ok_or_else(overflow)?;
    }
    v = v.checked_mul(pow10(decimals)).ok_or_else(overflow)?;
    let mut f: u128 = 0;
    for c in frac.bytes() {
        f = f * 10 + u128::from(c - b'0');
    }
    f *= pow10(decimals - frac.len() as u8);
    v.checked_add(f).ok_or_else(overflow)
}

/// Formats base units as an exact decimal amount of tokens, without trailing zeros.
pub fn format(v: u128, decimals: u8) -> String {
    let p = pow10(decimals);
    let int = v / p;
    let frac = v % p;
    if frac == 0 {
        return int.to_string();
    }
    let f = format!("{frac:0width$}", width = usize::from(decimals));
    format!("{int}.{}", f.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse("10000", 18).unwrap(), 10_000 * 10u128.pow(18));
        assert_eq!(parse("0.5", 2).unwrap(), 50);
        assert_eq!(parse("1_000", 0).unwrap(), 1000);
        assert_eq!(parse(".25", 2).unwrap(), 25);
        assert_eq!(format(50, 2), "0.5");
        assert_eq!(format(1000, 0), "1000");
        assert_eq!(format(10u128.pow(18) + 1, 18), "1.000000000000000001");
    }

    #[test]
    fn rejects_bad_amounts() {
        for bad in [
            "-1",
            "1e3",
            "",
            ".",
            "1.2.3",
            "0.001",
            "NaN",
            "inf",
            "340282366920938463463374607431768211456",
        ] {
            assert!(parse(bad, 2).is_err(), "{bad:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn round_trip(v in any::<u128>(), d in 0u8..=MAX_DECIMALS) {
            prop_assert_eq!(parse(&format(v, d), d).unwrap(), v);
        }
    }
}
