//! What each server profile changes in the provider's behaviour (the vendor quirks,
//! as rclone keeps them per vendor).

use crate::config::Profile;

/// What a profile changes in the provider's behaviour.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Traits {
    /// Strong ETags from this server change on every write.
    pub(crate) trust_etag: bool,
    /// The server enforces `If-Match` on PUT/DELETE.
    pub(crate) server_if_match: bool,
    /// The server enforces `If-None-Match: *` on PUT.
    pub(crate) server_if_none_match: bool,
    /// Upload to a temporary name, then MOVE over the target (unless
    /// [`WebDavConfig::temp_uploads`] says otherwise): for servers that write a PUT in
    /// place, where a cut upload leaves a truncated file, and for unknown servers until
    /// the probe shows otherwise.
    pub(crate) temp_then_move: bool,
    /// The server answers MOVE `Overwrite: F` with 412 when the target exists.
    pub(crate) move_no_overwrite: bool,
    /// Nextcloud chunked upload.
    pub(crate) nextcloud_chunking: bool,
    /// The server evaluates the conditions atomically with the write, also against
    /// concurrent requests. Apache mod_dav_fs and SabreDAV check `If-Match` /
    /// `If-None-Match` before streaming the body and replace the file afterwards, so two
    /// overlapping PUTs can both pass: measured with a multi-process Apache, 9 of 40
    /// increments of the race were lost. The headers are still sent (they catch every
    /// non-overlapping conflict), but the capability is not claimed.
    pub(crate) atomic_conditions: bool,
    /// The server's WebDAV locks (when it announces class 2) can serve as the engine's
    /// commit lock: exclusive, enforced on every write, expiring, and refusing a stale
    /// token. Measured with curl on this machine's Debian packages: nginx dav-ext accepts
    /// writes with the token of an expired or released lock and acknowledges an UNLOCK
    /// with a wrong token, and lighttpd never expires a lock (a crashed client would
    /// block the folder for good), so neither is used.
    pub(crate) usable_locks: bool,
    /// The server marks an ETag weak while the file's mtime is within a second of the
    /// request (Apache: `W/"<size>-<mtime µs>"`), and strong afterwards with the same
    /// value. Such a tag is used without its `W/`: this provider never writes a file
    /// whose current tag is still weak (it waits first), so two writes of one file are
    /// at least a second apart and their mtimes, hence tags, differ.
    pub(crate) weak_window: bool,
    /// The server's tags are built from the mtime in nanoseconds and the size
    /// (golang.org/x/net/webdav: `"<mtime ns hex><size hex>"`, under rclone). They are
    /// used as versions, and in exchange this provider never writes a file whose
    /// content is less than [`MTIME_WINDOW`] old by the server's clock: two writes of a
    /// file are then more than a second apart, so their mtimes, hence tags, differ even
    /// on a filesystem whose clock ticks coarsely.
    pub(crate) mtime_window: bool,
    /// The server reads a MOVE's `Destination` as an escaped URL path, so any name can
    /// be a MOVE target (measured with the conformance `awkward_names` through
    /// temporary uploads: Apache, nginx, lighttpd, rclone, SabreDAV, webdav-server).
    /// WsgiDAV unescapes the header and then parses it as a URL: a `?` starts a query
    /// and a `;` parameters, so a MOVE to `question?mark` replaced the file `question`.
    /// Where this is false (and on a server not measured) a staged write to a name
    /// holding `?` or `;` is refused rather than sent somewhere else.
    pub(crate) literal_destination: bool,
}

impl Traits {
    pub(crate) fn of(p: Profile) -> Traits {
        let base = Traits {
            trust_etag: true,
            server_if_match: true,
            server_if_none_match: true,
            temp_then_move: false,
            move_no_overwrite: true,
            nextcloud_chunking: false,
            atomic_conditions: true,
            usable_locks: true,
            weak_window: false,
            mtime_window: false,
            literal_destination: true,
        };
        match p {
            // Our own server: everything the base claims is what it does (litmus and
            // the honesty probe in server/tests), and a PUT never writes in place.
            Profile::Syncfabric => base,
            // Unknown server: claim, and let the honesty probe decide. A PUT may be
            // written in place (wsgidav does), so a cut upload would leave a truncated
            // file: upload to a temporary name and move it into place.
            Profile::Generic => Traits {
                temp_then_move: true,
                literal_destination: false,
                ..base
            },
            Profile::Apache => Traits {
                atomic_conditions: false,
                weak_window: true,
                ..base
            },
            Profile::SabreDav => Traits {
                atomic_conditions: false,
                ..base
            },
            // Nextcloud's conditional writes are truthful, so its locks are never needed
            // (and its lock plugin varies by version and client).
            Profile::Nextcloud => Traits {
                nextcloud_chunking: true,
                usable_locks: false,
                ..base
            },
            // Whole-second mtime ETags, and If-Match / If-None-Match ignored on PUT.
            Profile::Nginx => Traits {
                trust_etag: false,
                server_if_match: false,
                server_if_none_match: false,
                usable_locks: false,
                ..base
            },
            // ETag from inode, whole-second mtime and size: not strong.
            Profile::Lighttpd => Traits {
                trust_etag: false,
                usable_locks: false,
                ..base
            },
            // ETag `<inode>-<whole-second mtime>-<size>` (wsgidav `util.get_file_etag`):
            // two same-size writes within a second keep it (measured: the conformance
            // behaviour `versions_change_on_every_write` failed with `Generic`). A PUT
            // with `If-Match` creates a missing file (201, measured), and cheroot's
            // worker threads check the conditions before writing the file in place.
            // Locks are enforced while held but do not fence: an `If` list tagged with a
            // URL is never evaluated (WsgiDAV looks lists up by its path-only ref URL)
            // and a new name's `If` not at all, so a write with a released token goes
            // through (measured with curl: 204; the conformance `server_lock` failed).
            // PUT writes in place (a cut upload leaves a truncated file, measured by
            // the conformance `failed_write_keeps_previous`): temporary upload + MOVE.
            Profile::WsgiDav => Traits {
                trust_etag: false,
                server_if_match: false,
                atomic_conditions: false,
                usable_locks: false,
                temp_then_move: true,
                move_no_overwrite: false,
                literal_destination: false,
                ..base
            },
            // `If-Match`, `If-None-Match: *` and a conditional DELETE are ignored (200,
            // measured with curl), and the ETag is an MD5 of the mtime alone
            // (webdav-server 2.6 `FileSystem.etag`): it does not follow the content. A
            // `Depth: infinity` lock on a folder does not stop another client's write
            // without the token inside it (201 / 200, measured with curl).
            // PUT writes in place (`w+`): temporary upload + MOVE.
            Profile::NodeWebdav => Traits {
                trust_etag: false,
                server_if_match: false,
                server_if_none_match: false,
                usable_locks: false,
                temp_then_move: true,
                move_no_overwrite: false,
                ..base
            },
            // ETag from mtime and size; PUT ignores the conditions and writes in place.
            // MOVE (golang.org/x/net/webdav) stats the destination, then renames: with
            // `Overwrite: F` two clients can both succeed, so IfAbsent is not atomic
            // either; with `Overwrite: T` it removes the destination before renaming.
            Profile::Rclone => Traits {
                mtime_window: true,
                server_if_match: false,
                server_if_none_match: false,
                temp_then_move: true,
                move_no_overwrite: false,
                ..base
            },
        }
    }
}
