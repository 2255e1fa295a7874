//! Futures bridge for gvthread (work in progress).
#![warn(missing_docs)]
