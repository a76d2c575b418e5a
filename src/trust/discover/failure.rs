//! How discovery failed: whether the registry answered at all.

/// Why discovery could not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    /// The registry could not be reached at all: the connection failed, or no answer came
    /// within the deadline. Only this lets stored evidence stand in (`verdicts`); a registry
    /// that answered, even with a 500 or a 503, is not offline: it fails closed (issue 13: "a
    /// registry answering 500 on /referrers: no fallback, the source fails closed").
    pub offline: bool,
}

impl Failure {
    pub(super) fn answered(message: String) -> Failure {
        Failure {
            message,
            offline: false,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Failure> for String {
    fn from(f: Failure) -> String {
        f.message
    }
}
