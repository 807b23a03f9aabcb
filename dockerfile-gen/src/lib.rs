//! caas-dockerfile-gen: turns a legacy app (an executable jar, a war, a release tarball or
//! directory with a start script, a Python app, a static native binary, a static site) into an
//! image on the rich "sofa" base images.
//!
//! The pipeline is detect -> plan -> render -> build (-> run):
//!
//! - [`detect`] reads the app the way its own tools would (the jar manifest through a zip
//!   reader, `pyproject.toml` through a TOML parser, the ELF header of a binary) and says which
//!   kind it is and why (files and evidence);
//! - [`planner`] turns the chosen candidate into a serialisable [`plan::Plan`]: base image, files
//!   to copy, ports, environment with defaults, start command, health check, volumes, and the
//!   reasons for every decision;
//! - [`render`] is a pure function from a plan to the Dockerfile and `.dockerignore`;
//! - [`output`] writes them atomically; [`build`] streams the build context to Docker;
//! - [`run`] starts a throwaway test environment (app + data container on an internal network)
//!   and removes it again.
//!
//! **Decision — no supervisord program file.** Under the `sofa/1` contract supervisord already
//! has an `app` program (`sofa-app`, run as `admin`) that runs the image's `CMD` or, without
//! one, the package in `/home/admin/release/run/`. A generated program file would start the app
//! twice or bypass `sofa-app`'s checks and the monitor's status, so the generator only ever sets
//! `CMD` (command mode) or copies a package (package mode).

pub mod build;
pub mod central;
pub mod cli;
pub mod context;
pub mod detect;
pub mod docker;
pub mod error;
#[doc(hidden)]
pub mod fixtures;
pub mod forward;
pub mod output;
pub mod plan;
pub mod planner;
pub mod progress;
pub mod render;
pub mod run;

pub use error::Error;
