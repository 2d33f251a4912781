//! Runs the stages a build needs, each on its own thread as soon as the
//! stages it depends on are done.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};

use super::stage::State;
use super::Builder;
use crate::error::BuildError;

impl Builder<'_> {
    /// Runs the needed stages, each on its own thread as soon as the
    /// stages it depends on are done. The first failure stops the others
    /// at their next step and is the one reported.
    pub(crate) fn run_stages(
        &self,
        needed: &[usize],
        deps: &BTreeMap<usize, Vec<usize>>,
        global_env: &[(String, String)],
    ) -> Result<BTreeMap<usize, State>, BuildError> {
        if let [only] = needed {
            let state = self.stage_run(*only, BTreeMap::new()).run(global_env)?;
            return Ok(BTreeMap::from([(*only, state)]));
        }
        let done: Mutex<BTreeMap<usize, State>> = Mutex::new(BTreeMap::new());
        let changed = Condvar::new();
        let first_error: Mutex<Option<BuildError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for &i in needed {
                let (done, changed, first_error) = (&done, &changed, &first_error);
                let wanted = &deps[&i];
                scope.spawn(move || {
                    let inputs = {
                        let mut g = done.lock().unwrap_or_else(|p| p.into_inner());
                        loop {
                            if self.failed.load(Ordering::SeqCst) {
                                return;
                            }
                            if wanted.iter().all(|d| g.contains_key(d)) {
                                break wanted
                                    .iter()
                                    .map(|d| (*d, g[d].clone()))
                                    .collect::<BTreeMap<_, _>>();
                            }
                            g = changed.wait(g).unwrap_or_else(|p| p.into_inner());
                        }
                    };
                    let result = self.stage_run(i, inputs).run(global_env);
                    let mut g = done.lock().unwrap_or_else(|p| p.into_inner());
                    match result {
                        Ok(state) => {
                            g.insert(i, state);
                        }
                        Err(e) => {
                            let mut first = first_error.lock().unwrap_or_else(|p| p.into_inner());
                            if first.is_none() && !matches!(e, BuildError::Cancelled) {
                                *first = Some(e);
                            }
                            self.failed.store(true, Ordering::SeqCst);
                        }
                    }
                    drop(g);
                    changed.notify_all();
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        Ok(done.into_inner().unwrap_or_else(|p| p.into_inner()))
    }
}
