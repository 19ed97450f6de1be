//! Helpers to run the real binaries (filled in below).
