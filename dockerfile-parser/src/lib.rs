//! Dockerfile text → syntax tree with source spans, typed instructions, and
//! BuildKit-compatible shell word expansion. Pure: no I/O, no execution.
