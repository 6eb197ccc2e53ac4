//! Spark's notations in job options: datetime patterns and DDL schemas.

use super::ColumnType;

/// Turns a Spark datetime pattern (`yyyy-MM-dd HH:mm:ss.SSS`) into a chrono format string.
pub fn spark_to_chrono(pattern: &str) -> Result<String, String> {
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal; '' is a single quote.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '\'' {
                out.push(chars[j]);
                j += 1;
            }
            if j == i + 1 {
                out.push('\'');
            }
            i = j + 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let piece = match (c, n) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1 | 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', _) => "%d",
            ('H', _) => "%H",
            ('h', _) => "%I",
            ('m', _) => "%M",
            ('s', _) => "%S",
            ('S', 1..=9) => {
                // A preceding `.` is part of chrono's `%.Nf`.
                if out.ends_with('.') {
                    out.pop();
                }
                out.push_str(&format!("%.{n}f"));
                i += n;
                continue;
            }
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('X' | 'x', 1) => "%#z",
            ('X' | 'x' | 'Z', _) => "%:z",
            ('z', _) => "%Z",
            (c, _) if c.is_ascii_alphabetic() => {
                return Err(format!(
                    "unsupported letter `{c}` in datetime pattern `{pattern}`; supported: y M d H h m s S a E X x Z z and quoted text"
                ));
            }
            (c, _) => {
                for _ in 0..n {
                    if c == '%' {
                        out.push_str("%%");
                    } else {
                        out.push(c);
                    }
                }
                i += n;
                continue;
            }
        };
        out.push_str(piece);
        i += n;
    }
    Ok(out)
}

/// Parses a Spark DDL schema: `id INT, name STRING, amount DOUBLE`.
pub fn parse_ddl(ddl: &str) -> Result<Vec<(String, ColumnType)>, String> {
    let mut cols = Vec::new();
    // Split on commas outside parentheses (`DECIMAL(10,2)`).
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in ddl.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&ddl[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&ddl[start..]);
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let mut words = part.split_whitespace();
        let (Some(name), Some(ty)) = (words.next(), words.next()) else {
            return Err(format!(
                "invalid column `{part}` in schema; expected `name TYPE`"
            ));
        };
        let name = name.trim_matches('`').to_string();
        let ty_word = ty.split('(').next().unwrap_or(ty);
        let Some(t) = ColumnType::parse(ty_word) else {
            return Err(format!(
                "unsupported type `{ty}` for column `{name}`; expected INT, BIGINT, DOUBLE, BOOLEAN, DATE, TIMESTAMP or STRING"
            ));
        };
        if cols.iter().any(|(n, _)| *n == name) {
            return Err(format!("column `{name}` is declared twice in schema"));
        }
        cols.push((name, t));
    }
    if cols.is_empty() {
        return Err("the schema declares no column".into());
    }
    Ok(cols)
}
