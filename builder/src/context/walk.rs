//! The walk over the context below a directory: `.dockerignore` decisions
//! applied as it descends, excluded directories pruned unless a later `!`
//! pattern may re-include something inside.

use std::os::unix::ffi::OsStringExt;

use super::dirwalk::DirWalk;
use super::*;

pub(super) struct Frame {
    /// Directory path with a trailing `/`.
    rel_slash: Vec<u8>,
    info: MatchInfo,
    /// Held back until a descendant proves the directory is part of the view.
    pending: Option<Entry>,
}

/// Walks the disk below a start directory, applying the exclusion decisions,
/// and reports every non-pruned entry with whether it is hidden (excluded).
pub(super) struct RawWalk<'a> {
    ctx: &'a BuildContext,
    inner: Option<DirWalk<'a>>,
    base: Vec<u8>,
    stack: Vec<Frame>,
    first: Option<(Entry, bool)>,
}

impl<'a> RawWalk<'a> {
    /// `start` is the entry at `base` (reported first); `None` for the context
    /// root or when the caller wants only what lies below `base`.
    pub(super) fn start(
        ctx: &'a BuildContext,
        base: Vec<u8>,
        info: MatchInfo,
        start: Option<(Entry, bool)>,
        max_depth: Option<usize>,
    ) -> Self {
        let start_abs = ctx.root.join(OsStr::from_bytes(&base));
        let descend = start.as_ref().is_none_or(|(e, _)| e.metadata.is_dir());
        let mut stack = Vec::new();
        if !base.is_empty() {
            let pending = start
                .as_ref()
                .and_then(|(e, hidden)| hidden.then(|| e.clone()));
            stack.push(Frame {
                rel_slash: join_rel(&base, b""),
                info,
                pending,
            });
        }
        // Directories the walk would prune are not read ahead (a hint:
        // without the parents' match results, as `.dockerignore` matching
        // of a whole path gives).
        let under = base.clone();
        let wanted = move |tail: &[u8]| {
            let joined;
            let rel = if under.is_empty() {
                tail
            } else {
                joined = join_rel(&under, tail);
                &joined
            };
            !matches!(
                ctx.decide(rel, true, &MatchInfo::default()),
                Ok(Decision::Prune)
            )
        };
        let files_ahead = ctx.files_ahead.load(std::sync::atomic::Ordering::Relaxed);
        let inner = descend
            .then(|| DirWalk::new(start_abs, max_depth, wanted).hashing_files_ahead(files_ahead));
        RawWalk {
            ctx,
            inner,
            base,
            stack,
            first: start,
        }
    }

    pub(super) fn next_raw(&mut self) -> Option<Result<(Entry, bool), ContextError>> {
        if let Some(first) = self.first.take() {
            return Some(Ok(first));
        }
        loop {
            let item = self.inner.as_mut()?.next()?;
            let mut de = match item {
                Ok(de) => de,
                Err((path, source)) => {
                    // fsutil ignores permission errors inside excluded directories.
                    let in_hidden_dir = self.stack.last().is_some_and(|f| f.pending.is_some());
                    if in_hidden_dir && source.kind() == io::ErrorKind::PermissionDenied {
                        continue;
                    }
                    return Some(Err(ContextError::Io { path, source }));
                }
            };
            let rel = if self.base.is_empty() {
                std::mem::take(&mut de.tail)
            } else {
                join_rel(&self.base, &de.tail)
            };
            while self
                .stack
                .last()
                .is_some_and(|f| !rel.starts_with(&f.rel_slash))
            {
                self.stack.pop();
            }
            let is_dir = de.is_dir;
            let no_parent = MatchInfo::default();
            let parent = self.stack.last().map_or(&no_parent, |f| &f.info);
            let decision = match self.ctx.decide(&rel, is_dir, parent) {
                Ok(d) => d,
                Err(e) => return Some(Err(e.into())),
            };
            let (info, hidden) = match decision {
                Decision::Prune => {
                    if is_dir {
                        if let Some(inner) = self.inner.as_mut() {
                            inner.skip_current_dir();
                        }
                    }
                    continue;
                }
                Decision::Hidden(info) => (info, true),
                Decision::Visible(info) => (info, false),
            };
            let metadata = match de.metadata() {
                Ok(m) => m,
                Err(source) => {
                    return Some(Err(ContextError::Io {
                        path: de.path(),
                        source,
                    }));
                }
            };
            let rel_slash = is_dir.then(|| join_rel(&rel, b""));
            let entry = Entry {
                path: PathBuf::from(std::ffi::OsString::from_vec(rel)),
                metadata,
                hashed: de.take_hashed(),
            };
            if let Some(rel_slash) = rel_slash {
                let pending = hidden.then(|| entry.clone());
                self.stack.push(Frame {
                    rel_slash,
                    info,
                    pending,
                });
            }
            return Some(Ok((entry, hidden)));
        }
    }
}

/// Iterator over the filtered context (see [`BuildContext::walk`]).
pub struct Walk<'a> {
    raw: RawWalk<'a>,
    queue: VecDeque<Entry>,
}

impl<'a> Walk<'a> {
    pub(super) fn new(raw: RawWalk<'a>) -> Self {
        Walk {
            raw,
            queue: VecDeque::new(),
        }
    }

    pub(super) fn empty(ctx: &'a BuildContext) -> Self {
        let raw = RawWalk {
            ctx,
            inner: None,
            base: Vec::new(),
            stack: Vec::new(),
            first: None,
        };
        Walk::new(raw)
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<Entry, ContextError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some(Ok(e));
            }
            let (entry, hidden) = match self.raw.next_raw()? {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            };
            if hidden {
                continue;
            }
            // A visible entry brings its held-back excluded parents into view.
            let own_frame = entry.metadata.is_dir();
            let parents = if own_frame {
                self.raw.stack.len().saturating_sub(1)
            } else {
                self.raw.stack.len()
            };
            let frames = &mut self.raw.stack[..parents];
            // Most entries have no held-back parent: given as they are (an
            // entry is a few hundred bytes, moved for every queue step).
            if frames.iter().all(|f| f.pending.is_none()) {
                return Some(Ok(entry));
            }
            for frame in frames {
                if let Some(p) = frame.pending.take() {
                    self.queue.push_back(p);
                }
            }
            self.queue.push_back(entry);
        }
    }
}
