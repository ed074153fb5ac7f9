// A small Swift wrapper over LMDB: one environment, named databases, read/write transactions and
// cursors. Write transactions commit when their closure returns and abort when it throws, so an
// error (MDB_MAP_FULL included) never leaves a half-written bank.
import CLMDB
import Foundation

/// An LMDB failure with the operation that produced it.
public struct LMDBError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let operation: String
    /// Free bytes on the filesystem holding the environment, measured when a write transaction failed
    /// for lack of room or with an I/O error (nil otherwise).
    public var freeBytes: Int?

    public init(code: Int32, operation: String, freeBytes: Int? = nil) {
        self.code = code
        self.operation = operation
        self.freeBytes = freeBytes
    }

    public var isMapFull: Bool { code == MDB_MAP_FULL }

    /// Below this many free bytes an EIO from a write transaction is taken for a full disk: LMDB
    /// reports a short write, which is what a filling disk gives it, as EIO.
    public static let nearlyFullBytes = 16 << 20

    /// The disk holding the environment could not take the transaction's pages.
    public var isDiskFull: Bool {
        if code == ENOSPC || code == EDQUOT { return true }
        if code == EIO, let freeBytes { return freeBytes < LMDBError.nearlyFullBytes }
        return false
    }

    public var description: String {
        let text = String(cString: mdb_strerror(code))
        if isMapFull {
            return
                """
                \(operation): the bank's LMDB map is full (\(text)); nothing from this batch was written. Reopen with \
                a larger map size.
                """
        }
        if isDiskFull {
            let free = freeBytes.map { "\($0) bytes free there" } ?? "free space unknown"
            return
                """
                \(operation): the disk is full (\(text); \(free)); nothing from this batch was written. Free some \
                space (or move the bank) and re-run: an add resumes where it stopped.
                """
        }
        if code == EIO, let freeBytes {
            return
                """
                \(operation): \(text) with \(freeBytes) bytes free, so the disk is failing rather than full; nothing \
                from this batch was written.
                """
        }
        return "\(operation): \(text)"
    }
}

@inline(__always)
func lmdbCheck(_ code: Int32, _ operation: @autoclosure () -> String) throws {
    if code != 0 { throw LMDBError(code: code, operation: operation()) }
}

/// A named database handle (valid for the lifetime of the environment).
public struct LMDBDatabase: Sendable {
    let dbi: MDB_dbi
}

/// An LMDB environment (a directory holding data.mdb and lock.mdb).
public final class LMDBEnvironment: @unchecked Sendable {
    let env: OpaquePointer
    public let path: String
    public let readOnly: Bool

    /// Opens (creating the files when writable) the environment in directory `path`.
    /// `mapSize` is the largest the data file may grow; it is virtual address space only (the file
    /// grows as it is written), so a large default costs nothing on 64-bit systems.
    /// An existing data.mdb is checked first (see `LMDBDataFile`): liblmdb trusts the file it maps, and
    /// reading a page past the end of a truncated one kills the process with SIGBUS.
    /// `noLock` (read-only only) uses no lock file at all: for a finished environment nobody writes, e.g. a shard
    /// read by `index merge` on a read-only or network filesystem, which is then left exactly as it was.
    public init(path: String, mapSize: Int, maxDatabases: Int = 16, readOnly: Bool = false, noLock: Bool = false)
        throws
    {
        precondition(!noLock || readOnly, "an environment without a lock file must be read-only")
        try LMDBDataFile.check(directory: path)
        var handle: OpaquePointer?
        try lmdbCheck(mdb_env_create(&handle), "mdb_env_create")
        guard let handle else { throw LMDBError(code: EINVAL, operation: "mdb_env_create") }
        env = handle
        self.path = path
        self.readOnly = readOnly
        // From here on every stored property is set, so a throw runs deinit, which closes the
        // environment: closing it here too would free it twice.
        try lmdbCheck(mdb_env_set_mapsize(env, mapSize), "set map size of \(path)")
        try lmdbCheck(mdb_env_set_maxdbs(env, MDB_dbi(maxDatabases)), "set max databases of \(path)")
        try lmdbCheck(mdb_env_set_maxreaders(env, 510), "set max readers of \(path)")
        // MDB_NOTLS: read transactions are not tied to OS threads (Swift tasks hop threads).
        var flags = UInt32(MDB_NOTLS)
        if readOnly { flags |= UInt32(MDB_RDONLY) }
        if noLock { flags |= UInt32(MDB_NOLOCK) }
        try lmdbCheck(mdb_env_open(env, path, flags, 0o644), "open LMDB environment \(path)")
        // The header was read before mapping; check again through LMDB's own view of it in case the
        // file shrank in between (its two meta pages are known to be there, so this read is safe).
        try LMDBDataFile.requireSize(directory: path, usedBytes: usedBytes)
    }

    deinit { mdb_env_close(env) }

    /// Id of the last committed write transaction.
    public var lastTransactionID: Int {
        var info = MDB_envinfo()
        mdb_env_info(env, &info)
        return info.me_last_txnid
    }

    /// The environment's current map size in bytes.
    public var mapSize: Int {
        var info = MDB_envinfo()
        mdb_env_info(env, &info)
        return info.me_mapsize
    }

    /// Opens (or with `create`, creates) a named database. Runs in its own short transaction,
    /// which is committed even when read-only: LMDB closes handles opened by an aborted one.
    public func database(_ name: String, create: Bool) throws -> LMDBDatabase {
        var txn: OpaquePointer?
        try lmdbCheck(mdb_txn_begin(env, nil, create ? 0 : UInt32(MDB_RDONLY), &txn), "begin transaction in \(path)")
        var dbi = MDB_dbi()
        let rc = mdb_dbi_open(txn, name, create ? UInt32(MDB_CREATE) : 0, &dbi)
        if rc != 0 {
            mdb_txn_abort(txn)
            throw LMDBError(code: rc, operation: "open database \(name) in \(path)")
        }
        try lmdbCheck(mdb_txn_commit(txn), "commit to \(path)")
        return LMDBDatabase(dbi: dbi)
    }

    /// Runs body in a read-only snapshot.
    public func read<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        var txn: OpaquePointer?
        try lmdbCheck(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "begin read transaction in \(path)")
        let transaction = LMDBTransaction(txn: txn!)
        defer { mdb_txn_abort(txn) }
        return try body(transaction)
    }

    /// Runs body in the (single, process-and-system-wide) write transaction: commits when body
    /// returns, aborts when it throws. Blocks while another writer holds the lock.
    /// A transaction that fails for lack of room (map or disk full) or with an I/O error throws an
    /// `LMDBError` naming this environment and the free space left on its disk; nothing of it is stored.
    public func write<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        var txn: OpaquePointer?
        try lmdbCheck(mdb_txn_begin(env, nil, 0, &txn), "begin write transaction in \(path)")
        let transaction = LMDBTransaction(txn: txn!)
        let result: T
        do {
            result = try body(transaction)
        } catch {
            mdb_txn_abort(txn)
            // A large transaction writes (spills) pages before its commit, so mdb_put can meet a full disk too.
            throw withWriteContext(error, operation: "write to \(path)")
        }
        // mdb_txn_commit frees the transaction whether or not it succeeds.
        let rc = mdb_txn_commit(txn)
        if rc != 0 {
            throw withWriteContext(LMDBError(code: rc, operation: "commit to \(path)"), operation: "commit to \(path)")
        }
        return result
    }

    /// A full map or disk, or an I/O error, gets the environment's path and the disk's free space.
    private func withWriteContext(_ error: Error, operation: String) -> Error {
        guard let failure = error as? LMDBError,
            [MDB_MAP_FULL, ENOSPC, EDQUOT, EIO].contains(failure.code)
        else { return error }
        var fs = statvfs()
        let free = statvfs(path, &fs) == 0 ? Int(fs.f_bavail) * Int(fs.f_frsize) : nil
        return LMDBError(code: failure.code, operation: operation, freeBytes: free)
    }

    /// Bytes of the data file in use (up to the last used page).
    public var usedBytes: Int {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        mdb_env_info(env, &info)
        mdb_env_stat(env, &stat)
        return (info.me_last_pgno + 1) * Int(stat.ms_psize)
    }
}

/// A transaction; valid only inside the closure that received it.
public struct LMDBTransaction {
    let txn: OpaquePointer

    /// Calls body with the stored bytes of key (nil when absent). The bytes point into the map and
    /// are valid only inside body.
    public func withValue<T>(_ db: LMDBDatabase, key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> T) throws
        -> T
    {
        var k = MDB_val()
        var v = MDB_val()
        let rc: Int32 = key.withUnsafeBytes { keyBytes in
            k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            return mdb_get(txn, db.dbi, &k, &v)
        }
        if rc == MDB_NOTFOUND { return try body(nil) }
        try lmdbCheck(rc, "mdb_get")
        return try body(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    public func get(_ db: LMDBDatabase, key: [UInt8]) throws -> [UInt8]? {
        try withValue(db, key: key) { $0.map { Array($0) } }
    }

    public func contains(_ db: LMDBDatabase, key: [UInt8]) throws -> Bool {
        try withValue(db, key: key) { $0 != nil }
    }

    public func put(_ db: LMDBDatabase, key: [UInt8], value: [UInt8], append: Bool = false) throws {
        try value.withUnsafeBytes { try put(db, key: key, bytes: $0, append: append) }
    }

    /// `append`: the key is greater than every key in the database (MDB_APPEND: no search, pages filled
    /// completely); LMDB refuses a key out of order with MDB_KEYEXIST.
    public func put(_ db: LMDBDatabase, key: [UInt8], bytes: UnsafeRawBufferPointer, append: Bool = false) throws {
        let rc: Int32 = key.withUnsafeBytes { keyBytes in
            var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            var v = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
            return mdb_put(txn, db.dbi, &k, &v, append ? UInt32(MDB_APPEND) : 0)
        }
        try lmdbCheck(rc, append ? "mdb_put (append)" : "mdb_put")
    }

    /// Deletes key; returns false when it was absent.
    @discardableResult
    public func delete(_ db: LMDBDatabase, key: [UInt8]) throws -> Bool {
        let rc: Int32 = key.withUnsafeBytes { keyBytes in
            var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            return mdb_del(txn, db.dbi, &k, nil)
        }
        if rc == MDB_NOTFOUND { return false }
        try lmdbCheck(rc, "mdb_del")
        return true
    }

    public func count(_ db: LMDBDatabase) throws -> Int {
        var stat = MDB_stat()
        try lmdbCheck(mdb_stat(txn, db.dbi, &stat), "mdb_stat")
        return stat.ms_entries
    }

    /// Visits entries in key order from the first key >= `from` (or the first key); body returns
    /// false to stop. The buffers point into the map and are valid only during the call.
    public func forEach(
        _ db: LMDBDatabase, from: [UInt8]? = nil,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        var cursor: OpaquePointer?
        try lmdbCheck(mdb_cursor_open(txn, db.dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()
        var rc: Int32
        if let from {
            rc = from.withUnsafeBytes { startBytes in
                k = MDB_val(
                    mv_size: startBytes.count, mv_data: UnsafeMutableRawPointer(mutating: startBytes.baseAddress))
                return mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
            }
        } else {
            rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
        }
        while rc == 0 {
            let keep = try body(
                UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
            if !keep { return }
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try lmdbCheck(rc, "mdb_cursor_get") }
    }
}

/// Checks of an environment's data.mdb made outside liblmdb, which maps the file and trusts it: a page
/// it reads past the end of a truncated file is a SIGBUS, not an error code.
///
/// The file starts with two meta pages (LMDB 0.9 layout, host byte order). Each is a 16-byte page
/// header (flags at offset 10, P_META = 0x08) and an MDB_meta: magic 0xBEEFC0DE at 16, data version
/// at 20, page size (the free database's md_pad) at 40, last used page at 136, transaction id at 144.
/// LMDB uses the meta page with the larger transaction id; its last page says how long the file must be.
enum LMDBDataFile {
    static let metaFlag: UInt16 = 0x08
    static let magic: UInt32 = 0xBEEF_C0DE
    static let dataVersion: UInt32 = 1
    static let metaBytes = 152

    struct Meta: Equatable {
        var pageSize: Int
        var lastPage: Int
        var transactionID: Int
        /// Bytes the file must hold: every page up to the last used one.
        var usedBytes: Int { (lastPage + 1) * pageSize }
    }

    static func path(in directory: String) -> String { (directory as NSString).appendingPathComponent("data.mdb") }

    /// Throws a clear error when data.mdb in `directory` exists but is not a whole LMDB data file
    /// (not a regular file, empty, foreign or cut short). A missing file is LMDB's to create or report.
    static func check(directory: String) throws {
        let file = path(in: directory)
        var info = stat()
        guard stat(file, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw BankError.bank(
                directory,
                """
                data.mdb is not a regular file \
                (\((info.st_mode & S_IFMT) == S_IFDIR ? "a directory" : "a special file")); restore it from a copy
                """
            )
        }
        let size = Int(info.st_size)
        guard size > 0 else { throw BankError.bank(directory, "data.mdb is empty (0 bytes); restore it from a copy") }
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }  // unreadable: LMDB's open reports why
        defer { close(fd) }
        let meta = try readMeta(fd: fd, size: size, directory: directory)
        // The size compared is taken after the meta page was read: a writer in another process may have grown the
        // file and committed since the first stat, and LMDB writes a transaction's pages before its meta page.
        var now = stat()
        try requireSize(
            directory: directory, size: fstat(fd, &now) == 0 ? Int(now.st_size) : size,
            usedBytes: meta.usedBytes)
    }

    /// Reads both meta pages and returns the one LMDB will use.
    static func readMeta(fd: Int32, size: Int, directory: String) throws -> Meta {
        func truncated(_ needed: Int) -> BankError {
            BankError.bank(
                directory, "data.mdb is truncated (\(size) of at least \(needed) bytes); restore it from a copy")
        }
        func page(at offset: Int, _ which: String) throws -> Meta {
            var bytes = [UInt8](repeating: 0, count: metaBytes)
            let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, metaBytes, off_t(offset)) }
            guard got == metaBytes else { throw truncated(offset + metaBytes) }
            func u16(_ at: Int) -> UInt16 {
                bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt16.self) }
            }
            func u32(_ at: Int) -> UInt32 {
                bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) }
            }
            func u64(_ at: Int) -> UInt64 {
                bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt64.self) }
            }
            let flags = u16(10), fileMagic = u32(16), version = u32(20)
            guard flags & metaFlag != 0, fileMagic == magic else {
                throw BankError.bank(
                    directory,
                    """
                    data.mdb is not an LMDB data file (its \(which) meta page is not one: overwritten?); restore it \
                    from a copy
                    """
                )
            }
            guard version == dataVersion else {
                throw BankError.bank(
                    directory, "data.mdb has LMDB data format \(version); this build reads format \(dataVersion)")
            }
            let lastPage = u64(136), txnid = u64(144)
            guard lastPage < UInt64(Int.max / 65536), txnid < UInt64(Int.max) else {
                throw BankError.bank(
                    directory,
                    "data.mdb's \(which) meta page is corrupt (last page \(lastPage)); restore it from a copy")
            }
            return Meta(pageSize: Int(u32(40)), lastPage: Int(lastPage), transactionID: Int(txnid))
        }
        let first = try page(at: 0, "first")
        let pageSize = first.pageSize
        // LMDB pages are a power of two from 512 bytes to 64 KiB (the OS page size when the file was made).
        guard pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else {
            throw BankError.bank(
                directory, "data.mdb's first meta page is corrupt (page size \(pageSize)); restore it from a copy")
        }
        guard size >= 2 * pageSize else { throw truncated(2 * pageSize) }
        let second = try page(at: pageSize, "second")
        var newest = second.transactionID > first.transactionID ? second : first
        newest.pageSize = pageSize  // the second page's copy of the size is not what LMDB uses
        return newest
    }

    /// Throws when the file holds fewer bytes than LMDB's pages in use.
    static func requireSize(directory: String, size: Int? = nil, usedBytes: Int) throws {
        var fileSize = size
        if fileSize == nil {
            var info = stat()
            if stat(path(in: directory), &info) == 0 { fileSize = Int(info.st_size) }
        }
        if let fileSize, fileSize < usedBytes {
            throw BankError.bank(
                directory, "data.mdb is truncated (\(fileSize) of \(usedBytes) bytes); restore it from a copy")
        }
    }
}
