//! Splits `--nix-extra`/`--podman-extra` strings into words the way a POSIX
//! shell would (quotes and backslashes), without expanding anything.

use crate::error::{Error, Result};

pub fn split(input: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(unterminated(input, "'")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(unterminated(input, "\"")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(unterminated(input, "\"")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => {
                        return Err(Error::usage(format!(
                            "trailing backslash in `{input}`; escape it as \\\\"
                        )));
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn unterminated(input: &str, quote: &str) -> Error {
    Error::usage(format!(
        "unterminated {quote} quote in `{input}`; close the quote"
    ))
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_on_whitespace_and_keeps_quoted_groups() {
        assert_eq!(
            split(r#"--option  "a b" 'c d' e\ f "x\"y" ''"#).unwrap(),
            vec!["--option", "a b", "c d", "e f", "x\"y", ""]
        );
    }

    #[test]
    fn empty_input_gives_no_words() {
        assert!(split("   ").unwrap().is_empty());
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let e = split("--foo 'bar").unwrap_err().to_string();
        assert!(e.contains("unterminated ' quote"), "{e}");
        assert!(split("\"x").is_err());
        assert!(split("x\\").is_err());
    }
}
