//! Sizes and durations as messages and listings show them to people.

use std::time::Duration;

/// A size: GiB with one decimal, else whole MiB, KiB or bytes (rounded up).
pub fn bytes(bytes: u128) -> String {
    const KIB: u128 = 1024;
    const MIB: u128 = 1024 * KIB;
    if bytes >= 1024 * MIB {
        format!("{:.1} GiB", bytes as f64 / (1024 * MIB) as f64)
    } else if bytes >= MIB {
        format!("{} MiB", bytes.div_ceil(MIB))
    } else if bytes >= KIB {
        format!("{} KiB", bytes.div_ceil(KIB))
    } else {
        format!("{bytes} bytes")
    }
}

/// A duration in whole units, largest first: `90000s` as `1d 1h`.
pub fn duration(d: Duration) -> String {
    let mut s = d.as_secs();
    let mut out = Vec::new();
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= secs {
            out.push(format!("{}{unit}", s / secs));
            s %= secs;
        }
    }
    if out.is_empty() {
        "0s".into()
    } else {
        out.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_their_unit() {
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(1025), "2 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5 MiB");
        assert_eq!(bytes(720_000_338), "687 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }

    #[test]
    fn durations_name_their_largest_units_first() {
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_secs(90_000)), "1d 1h");
        assert_eq!(duration(Duration::from_secs(61)), "1m 1s");
    }
}
