//! Runs the process of an OCI runtime spec inside Linux namespaces. Knows
//! nothing of images or Dockerfiles: a spec and a rootfs in, an exit status out.
