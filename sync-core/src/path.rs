//! Normalised relative paths.

use crate::Error;
use std::fmt;

/// A path relative to the root of a [`Storage`](crate::Storage): '/'-separated UTF-8,
/// no leading or trailing '/', no empty, `.` or `..` segments, no NUL or backslash.
///
/// The empty path is the root itself. Normalisation happens once, here, so no
/// provider has to defend against a path that escapes its root.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RemotePath(String);

impl RemotePath {
    /// The root of the storage.
    pub fn root() -> Self {
        RemotePath(String::new())
    }

    /// Parses and normalises `s`. A leading '/' and repeated or trailing '/' are
    /// dropped; `.` segments are dropped. Returns [`Error::InvalidInput`] for `..`,
    /// NUL, backslash or control characters.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let mut out = String::with_capacity(s.len());
        for seg in s.split('/') {
            if seg.is_empty() || seg == "." {
                continue;
            }
            if seg == ".." {
                return Err(Error::InvalidInput {
                    message: format!("path {s:?} leaves the storage root"),
                });
            }
            if seg.chars().any(|c| c == '\\' || c.is_control()) {
                return Err(Error::InvalidInput {
                    message: format!("path {s:?} has a backslash or control character"),
                });
            }
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(seg);
        }
        Ok(RemotePath(out))
    }

    /// The normalised path as a string ("" for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last segment, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.0.is_empty() {
            None
        } else {
            self.0.rsplit('/').next()
        }
    }

    /// The parent path, or `None` for the root.
    pub fn parent(&self) -> Option<RemotePath> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(i) => RemotePath(self.0[..i].to_string()),
            None => RemotePath::root(),
        })
    }

    /// Appends `child` (which is itself parsed and normalised).
    pub fn join(&self, child: &str) -> Result<RemotePath, Error> {
        let c = RemotePath::parse(child)?;
        if self.0.is_empty() {
            return Ok(c);
        }
        if c.0.is_empty() {
            return Ok(self.clone());
        }
        Ok(RemotePath(format!("{}/{}", self.0, c.0)))
    }

    /// The segments of the path, root first.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

impl fmt::Debug for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemotePath({:?})", self.0)
    }
}
