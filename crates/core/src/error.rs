//! Error helpers shared by caasctl's crates.

/// Flattens an error and its sources into one line, dropping a cause whose text the line already
/// contains. Transport errors need this because their useful part (such as rustls'
/// `UnknownIssuer` or `connection refused`) sits deep in the source chain.
pub fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(cause) = current {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        current = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|inner| inner as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn chain_text_skips_repeated_causes() {
        let error = Layer("transport error: connection refused", Some(Box::new(Layer("connection refused", Some(Box::new(Layer("os error 111", None)))))));
        assert_eq!(chain_text(&error), "transport error: connection refused: os error 111");
    }
}
