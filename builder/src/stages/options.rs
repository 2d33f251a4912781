//! What a build is asked to do ([`BuildOptions`]), what it reports while
//! it runs ([`Event`]) and what it returns ([`BuildOutput`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use image_store::{Descriptor, Digest, Reference};
use runner::spec::Network;

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub dockerfile: String,
    /// For error messages (`Dockerfile:3: …`).
    pub dockerfile_name: String,
    /// The build context; `None` when the Dockerfile came on stdin alone.
    pub context: Option<PathBuf>,
    /// The context is a temp directory (an unpacked archive, a checkout):
    /// its stat index is not kept, as its path is never seen again.
    pub transient_context: bool,
    /// `.dockerignore` patterns already read for this build.
    pub ignore_patterns: Vec<String>,
    pub tags: Vec<Reference>,
    /// `--build-arg K=V` (`K` alone takes the value from the environment).
    pub build_args: BTreeMap<String, Option<String>>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub labels: Vec<(String, String)>,
    pub squash: bool,
    pub network: Option<Network>,
    /// `--network bridge`: RUN steps (without their own `--network`) on
    /// kiln's default bridge, each with an address of its own.
    pub bridge: bool,
    /// `--secret id=ID,src=PATH`.
    pub secrets: BTreeMap<String, PathBuf>,
    pub quiet: bool,
    /// `SOURCE_DATE_EPOCH`: times in the image clamped to it.
    pub source_date_epoch: Option<u64>,
    /// An external OCI runtime for RUN steps.
    pub runtime: Option<PathBuf>,
    /// When base images are pulled through the [`transfer::Puller`].
    pub pull: PullPolicy,
    /// RUN output comes as [`EventKind::Output`] lines instead of going
    /// straight to standard error (for a progress display that owns the
    /// terminal).
    pub capture_output: bool,
    /// `--cache-from`: caches whose steps count as hits.
    pub cache_from: Vec<crate::flags::CacheSpec>,
    /// `--cache-to`: where this build's steps are exported.
    pub cache_to: Vec<crate::flags::CacheSpec>,
    /// Names the caller pushes the image to once it is built: the final
    /// image's layers are compressed and uploaded there as their steps
    /// finish, so the push then finds them (`--push`).
    pub upload_to: Vec<String>,
    /// `--build-context NAME=…`: what `FROM NAME`, `COPY --from=NAME` and
    /// `RUN --mount=from=NAME` mean instead of an image called NAME.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `--annotation`: set on the image's manifest.
    pub annotations: BTreeMap<String, String>,
    /// `--no-cache-filter`: stages (lower-cased names) whose steps all run
    /// again, while the others still use the cache.
    pub no_cache_stages: Vec<String>,
    /// `--ssh ID=SOCKET`: agent sockets for `RUN --mount=type=ssh`.
    pub ssh: BTreeMap<String, PathBuf>,
    /// `--add-host`, `--shm-size`, `--ulimit`: what every RUN step gets.
    pub step_host: StepHost,
}

/// The container settings `docker build` passes to every RUN step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepHost {
    /// `(host, IP)` lines added to the step's /etc/hosts.
    pub add_hosts: Vec<(String, String)>,
    /// The size of the step's /dev/shm in bytes (docker's default 64 MiB
    /// otherwise).
    pub shm_size: Option<i64>,
    /// `--ulimit` values, as `kiln run` parses them.
    pub ulimits: Vec<oci_spec::runtime::PosixRlimit>,
}

impl StepHost {
    pub fn is_default(&self) -> bool {
        *self == StepHost::default()
    }
}

/// A named context (buildx's `--build-context`), as prepared by
/// [`crate::inputs::named`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// An image in the store (or one to pull): `docker-image://REF`, or
    /// the ID of an `oci-layout://` image brought into the store.
    Image(String),
    /// A directory of files (a local directory, or an unpacked URL or git
    /// checkout) and the patterns of its own `.dockerignore`. As a FROM
    /// base it is one layer holding its files.
    Dir(PathBuf, Vec<String>),
}

/// `--pull`: when a base image (FROM, `COPY --from`, a mount's `from`) is
/// fetched rather than taken from the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Only when the store does not have it (docker's default).
    #[default]
    Missing,
    /// Every time, so the build sees the registry's current image.
    Always,
    /// Never: a missing image is an error.
    Never,
}

/// Progress, for the CLI to show as it likes. Stages that do not depend on
/// each other run at the same time, so every event names its stage.
#[derive(Debug)]
pub struct Event<'a> {
    /// 1-based among the stages this build runs; 0 for the build as a whole.
    pub stage: usize,
    /// How many stages this build runs.
    pub stages: usize,
    pub kind: EventKind<'a>,
}

#[derive(Debug)]
pub enum EventKind<'a> {
    /// A step starts; `number` and `total` count within the stage.
    Step {
        number: usize,
        total: usize,
        text: &'a str,
        /// The name BuildKit gives this step's vertex (`[stage-0 2/3] RUN
        /// …`), or `None` for a step BuildKit makes no vertex of (ENV,
        /// LABEL, CMD…: they only change the config; FROM scratch or an
        /// earlier stage).
        vertex: Option<&'a str>,
    },
    CacheHit,
    /// The first cache miss of a stage, and why.
    CacheMiss {
        reason: String,
    },
    StepDone {
        secs: f64,
    },
    /// A line a RUN step printed to standard output or error (only with
    /// [`BuildOptions::capture_output`]).
    Output(Stream, &'a str),
    /// The step that started last in this stage failed with this error
    /// (in BuildKit's words for a failed RUN); the build stops.
    Failed(String),
    /// The stage is finished.
    StageDone,
    Warning(String),
    /// A line about the build as a whole (the cache export).
    Info(String),
}

/// Which of a RUN step's streams a line came from (BuildKit's log
/// stream numbers 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 1,
    Stderr = 2,
}

#[derive(Debug)]
pub struct BuildOutput {
    pub id: Digest,
    pub manifest: Descriptor,
}
