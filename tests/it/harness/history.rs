//! The daemon's SQLite history read straight from the file: what is on disk, not what the
//! daemon says.

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

pub struct HistoryFile(PathBuf);

impl HistoryFile {
    /// The history a daemon keeps in `dir` (the tests' `storage.path`).
    pub fn in_dir(dir: &Path) -> HistoryFile {
        HistoryFile(dir.join("history.db"))
    }

    /// A read-write connection, e.g. to make the disk fail with a trigger.
    pub fn open(&self) -> Connection {
        Connection::open(&self.0).unwrap()
    }

    /// The recorded webhook alerts in order: (fingerprint, starts_at, status).
    pub fn webhook_alerts(&self) -> Vec<(String, String, String)> {
        let c = Connection::open_with_flags(&self.0, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut st = c
            .prepare("SELECT fingerprint, starts_at, status FROM webhook_alerts ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// The statuses an event went through, in order.
    pub fn transitions(&self, event_id: &str) -> Vec<String> {
        let c = self.open();
        let mut st = c
            .prepare("SELECT status FROM rollback_transitions WHERE event_id = ?1 ORDER BY seq")
            .unwrap();
        st.query_map([event_id], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// The newest transition of any event.
    pub fn last_transition(&self) -> Option<String> {
        self.open()
            .query_row(
                "SELECT status FROM rollback_transitions ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
    }
}
