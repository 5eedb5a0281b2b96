//! Instances send a post's text as HTML. tether never renders remote HTML: it keeps the text
//! only, which templates then escape like any other string.

/// The visible text of `html`: tags dropped (a line break for `<br>` and between paragraphs),
/// the content of `<script>` and `<style>` dropped, entities decoded, whitespace tidied, and at
/// most `max_chars` characters (an ellipsis marks a cut).
pub fn plain_text(html: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(html.len().min(max_chars * 4));
    let mut rest = html;
    let mut skipping: Option<&'static str> = None;
    while !rest.is_empty() {
        let Some(open) = rest.find('<') else {
            if skipping.is_none() {
                decode_into(rest, &mut out);
            }
            break;
        };
        if skipping.is_none() {
            decode_into(&rest[..open], &mut out);
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            // A stray `<` that opens no tag is text.
            if skipping.is_none() {
                out.push('<');
            }
            rest = after;
            continue;
        };
        let tag = &after[..close];
        rest = &after[close + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(skipped) = skipping {
            if closing && name == skipped {
                skipping = None;
            }
            continue;
        }
        match (name.as_str(), closing) {
            ("script", false) => skipping = Some("script"),
            ("style", false) => skipping = Some("style"),
            ("br", _) => out.push('\n'),
            ("p", true) | ("li", true) | ("blockquote", true) => out.push_str("\n\n"),
            _ => {}
        }
    }
    tidy(&out, max_chars)
}

fn decode_into(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let entity = after
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| entity(&after[..end]).map(|c| (c, end)));
        match entity {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

fn entity(name: &str) -> Option<char> {
    let named = match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => None,
    };
    if named.is_some() {
        return named;
    }
    let number = name.strip_prefix('#')?;
    let code = match number.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => number.parse().ok()?,
    };
    char::from_u32(code).filter(|c| !c.is_control() || *c == '\n')
}

/// Spaces collapsed within lines, at most one blank line in a row, and the length bound.
fn tidy(text: &str, max_chars: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let joined = lines.join("\n");
    if joined.chars().count() <= max_chars {
        return joined;
    }
    let mut cut: String = joined.chars().take(max_chars.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::plain_text;

    #[test]
    fn paragraphs_and_breaks_become_lines() {
        assert_eq!(
            plain_text(
                "<p>One<br>two</p><p>three &amp; <a href=\"x\">four</a></p>",
                100
            ),
            "One\ntwo\n\nthree & four"
        );
    }

    #[test]
    fn scripts_are_dropped_and_escaped_tags_stay_text() {
        assert_eq!(
            plain_text("<p>a<script>alert(1)</script> b &lt;script&gt;</p>", 100),
            "a b <script>"
        );
    }

    #[test]
    fn stray_brackets_and_unknown_entities_survive() {
        assert_eq!(
            plain_text("1 < 2 &bogus; &#x1F600;", 100),
            "1 < 2 &bogus; 😀"
        );
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        assert_eq!(plain_text("<p>abcdef ghijkl</p>", 8), "abcdef…");
    }
}
