//! "Did you mean": the closest known name to a mistyped one, for the hints of configuration
//! options and init-file keys.

/// The closest known name, if close enough to be a likely typo.
pub fn did_you_mean<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_not() {
        assert_eq!(did_you_mean("memroy", &["memory", "vcpu"]), Some("memory"));
        assert_eq!(did_you_mean("zzzz", &["memory", "vcpu"]), None);
    }
}
