//! The process's open-file limit (RLIMIT_NOFILE), which bounds the connections the HTTP servers may hold. Without
//! `LimitNOFILE=` systemd starts services at a soft limit of 1,024, so the daemon raises its soft limit to the hard
//! one at start, and each server caps its connections well below whatever soft limit it finds
//! ([`crate::edge::http_server`]).

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The soft limit now; `None` when the system does not say (each server then keeps its own fixed cap).
pub fn soft_limit() -> Option<u64> {
    getrlimit(Resource::RLIMIT_NOFILE).ok().map(|(soft, _)| soft)
}

/// Raises the soft limit to the hard one. Logs what it did; a failure costs nothing but headroom, so it is only logged.
pub fn raise_soft_limit() {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(err) => {
            tracing::debug!("cannot read the open-file limit: {err}");
            return;
        }
    };
    if soft >= hard {
        tracing::debug!(soft, hard, "open-file limit");
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => tracing::debug!(
            from = soft,
            to = hard,
            "raised the open-file soft limit to the hard limit"
        ),
        Err(err) => tracing::debug!(soft, hard, "cannot raise the open-file soft limit: {err}"),
    }
}
