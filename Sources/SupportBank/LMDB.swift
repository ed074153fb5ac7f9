// A small Swift wrapper over LMDB: one environment, named databases, read/write transactions and
// cursors. Write transactions commit when their closure returns and abort when it throws, so an
// error (MDB_MAP_FULL included) never leaves a half-written bank.
import CLMDB
import Foundation

/// An LMDB failure with the operation that produced it.
public struct LMDBError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let operation: String
    public var isMapFull: Bool { code == MDB_MAP_FULL }
    public var description: String {
        let text = String(cString: mdb_strerror(code))
        if isMapFull {
            return "\(operation): the bank's LMDB map is full (\(text)); nothing from this batch was written. Reopen with a larger map size."
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
    public init(path: String, mapSize: Int, maxDatabases: Int = 16, readOnly: Bool = false) throws {
        var handle: OpaquePointer?
        try lmdbCheck(mdb_env_create(&handle), "mdb_env_create")
        guard let handle else { throw LMDBError(code: EINVAL, operation: "mdb_env_create") }
        env = handle
        self.path = path
        self.readOnly = readOnly
        do {
            try lmdbCheck(mdb_env_set_mapsize(env, mapSize), "set map size of \(path)")
            try lmdbCheck(mdb_env_set_maxdbs(env, MDB_dbi(maxDatabases)), "set max databases of \(path)")
            try lmdbCheck(mdb_env_set_maxreaders(env, 510), "set max readers of \(path)")
            // MDB_NOTLS: read transactions are not tied to OS threads (Swift tasks hop threads).
            var flags = UInt32(MDB_NOTLS)
            if readOnly { flags |= UInt32(MDB_RDONLY) }
            try lmdbCheck(mdb_env_open(env, path, flags, 0o644), "open LMDB environment \(path)")
        } catch {
            mdb_env_close(env)
            throw error
        }
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
    public func write<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        var txn: OpaquePointer?
        try lmdbCheck(mdb_txn_begin(env, nil, 0, &txn), "begin write transaction in \(path)")
        let transaction = LMDBTransaction(txn: txn!)
        let result: T
        do {
            result = try body(transaction)
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        // mdb_txn_commit frees the transaction whether or not it succeeds.
        try lmdbCheck(mdb_txn_commit(txn), "commit to \(path)")
        return result
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
    public func withValue<T>(_ db: LMDBDatabase, key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> T) throws -> T {
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

    public func put(_ db: LMDBDatabase, key: [UInt8], value: [UInt8]) throws {
        try value.withUnsafeBytes { try put(db, key: key, bytes: $0) }
    }

    public func put(_ db: LMDBDatabase, key: [UInt8], bytes: UnsafeRawBufferPointer) throws {
        let rc: Int32 = key.withUnsafeBytes { keyBytes in
            var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            var v = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
            return mdb_put(txn, db.dbi, &k, &v, 0)
        }
        try lmdbCheck(rc, "mdb_put")
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
    public func forEach(_ db: LMDBDatabase, from: [UInt8]? = nil,
                        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        var cursor: OpaquePointer?
        try lmdbCheck(mdb_cursor_open(txn, db.dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()
        var rc: Int32
        if let from {
            rc = from.withUnsafeBytes { startBytes in
                k = MDB_val(mv_size: startBytes.count, mv_data: UnsafeMutableRawPointer(mutating: startBytes.baseAddress))
                return mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
            }
        } else {
            rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
        }
        while rc == 0 {
            let keep = try body(UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                                UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
            if !keep { return }
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try lmdbCheck(rc, "mdb_cursor_get") }
    }
}
