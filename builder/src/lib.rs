//! Turns a parsed Dockerfile into images: stages, ARG/ENV scoping, ONBUILD,
//! `.dockerignore`, cache keys and layer creation. RUN steps go to the runner.

pub mod build;
pub mod config;
pub mod context;
pub mod dockerignore;
