//! What the server keeps between requests: the store's place, how a
//! container's monitor is started, the containers this server started (to
//! follow their output and learn their exit codes), exec instances, the
//! event bus, and the activity that `--time` measures.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use image_store::Store;
use tokio::sync::{oneshot, watch};

use crate::events::Events;
use crate::exec::ExecInstance;
use crate::http::{ApiError, ApiResult};

/// Builds the monitor command of a container (`kiln run --monitor ID`):
/// the binary knows how it is invoked.
pub type MonitorFn = Arc<dyn Fn(&Store, &str) -> std::io::Result<Command> + Send + Sync>;

pub struct State {
    pub root: PathBuf,
    pub monitor: MonitorFn,
    pub events: Events,
    pub activity: Arc<Activity>,
    /// Per container this server started: its run's exit code once the
    /// monitor is gone (`None` while it runs).
    pub runs: Mutex<HashMap<String, watch::Receiver<Option<i32>>>>,
    /// Attach requests waiting for their container to start: each gets
    /// the log file, opened before the container writes to it.
    pub attachers: Mutex<HashMap<String, Vec<oneshot::Sender<File>>>>,
    pub execs: Mutex<HashMap<String, Arc<ExecInstance>>>,
}

impl State {
    pub fn new(root: PathBuf, monitor: MonitorFn) -> State {
        State {
            root,
            monitor,
            events: Events::new(),
            activity: Arc::new(Activity::new()),
            runs: Mutex::new(HashMap::new()),
            attachers: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
        }
    }

    /// The store, opened as the CLI opens it (with the cgroup janitor).
    pub fn store(&self) -> ApiResult<Store> {
        Store::open(&self.root)
            .map(|s| s.with_janitor(containers::check::remove_leftover_cgroups))
            .map_err(|e| {
                ApiError::internal(format!(
                    "opening the image store at {}: {e}",
                    self.root.display()
                ))
            })
    }

    /// The exit watch of a run this server started.
    pub fn run_of(&self, id: &str) -> Option<watch::Receiver<Option<i32>>> {
        self.runs.lock().expect("not poisoned").get(id).cloned()
    }
}

/// Open connections and hijacked streams, and when the last one ended.
pub struct Activity {
    active: AtomicUsize,
    last: Mutex<Instant>,
}

pub struct Active(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity {
            active: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }
    pub fn enter(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::SeqCst);
        Active(self.clone())
    }
    /// How long nothing has been open (zero while something is).
    pub fn idle_for(&self) -> std::time::Duration {
        if self.active.load(Ordering::SeqCst) > 0 {
            return std::time::Duration::ZERO;
        }
        self.last.lock().expect("not poisoned").elapsed()
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        *self.0.last.lock().expect("not poisoned") = Instant::now();
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}
