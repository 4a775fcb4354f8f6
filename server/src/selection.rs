//! Names and collection filters, validated once at the API edge.
//!
//! A filter is a list of `DB.COLLECTION` patterns where either part may be `*`; a
//! bare `COLLECTION` means database `default`; an empty list selects everything.

use crate::error::{Error, Result};

/// The database Milvus uses when none is named.
pub(crate) const DEFAULT_DB: &str = "default";

/// Checks a backup name: 1–128 characters of `[A-Za-z0-9._-]`, starting with a letter
/// or digit (it becomes a directory name in every storage backend).
pub(crate) fn validate_backup_name(name: &str) -> Result<()> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > 128 || !ok_first || !ok_rest {
        return Err(Error::invalid(
            "backup name",
            format!(
                "{name:?} must be 1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// Checks a Milvus collection, alias or database name: a letter or `_` first, then
/// letters, digits and `_`, at most 255 characters (Milvus's own rule).
pub(crate) fn validate_milvus_name(what: &'static str, name: &str) -> Result<()> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let ok_rest = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok_first || !ok_rest || name.len() > 255 {
        return Err(Error::invalid(
            what,
            format!(
                "{name:?} is not a valid Milvus name (letters, digits and _, not starting with a digit)"
            ),
        ));
    }
    Ok(())
}

/// One `DB.COLLECTION` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    database: Option<String>,
    collection: Option<String>,
}

/// A parsed collection filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    patterns: Vec<Pattern>,
}

impl Filter {
    /// Parses the patterns; each entry may itself hold a comma list.
    pub(crate) fn parse(items: &[String]) -> Result<Self> {
        let mut patterns = Vec::new();
        for item in items {
            for raw in item.split(',').map(str::trim) {
                if raw.is_empty() {
                    continue;
                }
                let (db, coll) = match raw.split_once('.') {
                    Some((d, c)) => (d, c),
                    None => (DEFAULT_DB, raw),
                };
                let part = |p: &str, what: &'static str| -> Result<Option<String>> {
                    if p == "*" {
                        return Ok(None);
                    }
                    validate_milvus_name(what, p).map_err(|_| {
                        Error::invalid(
                            "collection filter",
                            format!("{raw:?}: {p:?} is neither * nor a valid Milvus name; use DB.COLLECTION, DB.*, *.COLLECTION or COLLECTION"),
                        )
                    })?;
                    Ok(Some(p.to_owned()))
                };
                patterns.push(Pattern {
                    database: part(db, "database")?,
                    collection: part(coll, "collection")?,
                });
            }
        }
        Ok(Self { patterns })
    }

    /// Whether nothing was asked for (everything is selected).
    pub(crate) fn is_all(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern could select something in `database`.
    pub(crate) fn may_match_database(&self, database: &str) -> bool {
        self.is_all()
            || self
                .patterns
                .iter()
                .any(|p| p.database.as_deref().is_none_or(|d| d == database))
    }

    /// Whether `database.collection` is selected.
    pub(crate) fn matches(&self, database: &str, collection: &str) -> bool {
        self.is_all()
            || self.patterns.iter().any(|p| {
                p.database.as_deref().is_none_or(|d| d == database)
                    && p.collection.as_deref().is_none_or(|c| c == collection)
            })
    }

    /// Patterns naming one exact collection, to report those that matched nothing.
    pub(crate) fn exact_names(&self) -> Vec<(String, String)> {
        self.patterns
            .iter()
            .filter_map(|p| Some((p.database.clone()?, p.collection.clone()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(items: &[&str]) -> Filter {
        Filter::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("parse")
    }

    #[test]
    fn names() {
        assert!(validate_backup_name("nightly-2026.11.28_a").is_ok());
        for bad in ["", "-x", "a/b", "a b", &"x".repeat(129), "..", "ü"] {
            assert!(validate_backup_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filters() {
        let all = f(&[]);
        assert!(all.matches("db1", "c"));
        let one = f(&["c1"]);
        assert!(one.matches("default", "c1"));
        assert!(!one.matches("db1", "c1"));
        let mix = f(&["db1.*,*.shared", "default.x"]);
        assert!(mix.matches("db1", "anything"));
        assert!(mix.matches("db2", "shared"));
        assert!(mix.matches("default", "x"));
        assert!(!mix.matches("db2", "x"));
        assert!(mix.may_match_database("db9"));
        assert!(!f(&["db1.c"]).may_match_database("db2"));
        assert_eq!(
            mix.exact_names(),
            vec![("default".to_string(), "x".to_string())]
        );
    }

    #[test]
    fn bad_filters_are_rejected() {
        for bad in ["a.b.c", "db.", "1abc", "a-b", "*.c d"] {
            let err = Filter::parse(&[bad.to_string()]).expect_err(bad);
            assert!(err.to_string().contains("collection filter"), "{err}");
        }
    }
}
