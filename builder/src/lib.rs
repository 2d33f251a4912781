//! Turns a parsed Dockerfile into images: stages, ARG/ENV scoping, ONBUILD,
//! `.dockerignore`, cache keys and layer creation. RUN steps go to the runner.
//!
//! - `stages/`: the build as a whole: the plan of stages, the scheduler that
//!   runs them side by side, one stage's FROM and step loop, the layer limit,
//!   `--squash`, what a build shares (cache import/export, push uploads);
//! - `steps/`: one module per kind of step (ARG, config-only, COPY/ADD, RUN,
//!   WORKDIR) and what they share;
//! - `cache/`: step keys, the step records (the store's build roots), the
//!   stat index of the context, and the cache shared through a registry, a
//!   directory or an image config (`remote`, `export`, `uploader`, `inline`);
//! - `context`, `dockerignore`: the build context and what it excludes;
//! - `config`: the config-only instructions applied to an image config;
//! - `flags`: `docker build`'s flag values, parsed;
//! - `outputs`: `--output`/`--push` and `--metadata-file`.
//! - `inputs`: the Dockerfile and context from a directory, standard input,
//!   a URL or git, and named contexts;
//! - `lint`: `--check`;
//! - `solve_status`: the events as BuildKit's SolveStatus stream
//!   (`--progress rawjson`).

mod cache;
pub mod config;
pub mod context;
pub mod dockerignore;
pub mod error;
pub mod flags;
pub mod import;
pub mod inputs;
pub mod lint;
pub mod outputs;
pub mod solve_status;
pub mod stages;
mod steps;

pub use error::BuildError;
pub use stages::{
    build, parse_size, private_mount_namespace, prune_cache, BuildOptions, BuildOutput, Event,
    EventKind, NamedContext, PruneOptions, Pruned, PullPolicy, StepHost, Stream, MAX_LAYERS,
};
