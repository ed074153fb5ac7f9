// A restricted unpickler for PyTorch checkpoints: it accepts what `torch.load(weights_only=True)` accepts
// for a state dict and nothing else. Pickle is a small stack machine whose GLOBAL and REDUCE opcodes would,
// in Python, import and call any function (`os.system`), so here no code is ever looked up or called:
// GLOBAL may only name the handful of torch rebuild functions, storage types and collections.OrderedDict,
// REDUCE may only apply those, and every other name or opcode is an error at the byte where it appears,
// before anything after it is read. Objects live in one flat arena referred to by index, so shared
// references behave as in Python and no nesting can recurse or overflow the stack; the arena, the stack,
// the memo and the nesting depth are all bounded, and every length in the pickle is checked against the
// bytes that remain.
// (Opcode reference: CPython Lib/pickletools.py; torch's own whitelist: torch/_weights_only_unpickler.py.)

struct Unpickler {
    /// Limits far above any real checkpoint (SAM 2 large: ~10^4 objects, depth < 10) and far below what
    /// would let a small hostile file claim much memory.
    static let maxObjects = 2_000_000
    static let maxStack = 200_000
    static let maxDepth = 100
    static let maxGlobalNameBytes = 256

    private let data: UnsafeRawBufferPointer
    private var position = 0
    private var opcodeStart = 0
    private(set) var arena: [PickleObject] = []
    private var depth: [Int] = []
    private var stack: [Int] = []
    private var marks: [Int] = []
    private var memo: [Int: Int] = [:]
    private(set) var storages: [TorchStorage] = []
    private var storageIndex: [String: Int] = [:]
    /// Size in bytes of the archive's `data/<key>` entry, nil when there is none.
    private let storageBytes: (String) -> Int?

    init(_ data: UnsafeRawBufferPointer, storageBytes: @escaping (String) -> Int?) {
        self.data = data
        self.storageBytes = storageBytes
    }

    private func fail(_ message: String) -> UnpicklingError { UnpicklingError(offset: opcodeStart, message: message) }

    // MARK: reading bytes

    private mutating func take(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= data.count - position else {
            throw fail("needs \(count) bytes but only \(data.count - position) remain (truncated pickle)")
        }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: data[position..<(position + count)])
    }

    private mutating func byte() throws -> Int { Int(try take(1)[0]) }

    private mutating func littleEndian(_ count: Int) throws -> UInt64 {
        let bytes = try take(count)
        var value: UInt64 = 0
        for i in (0..<count).reversed() { value = value << 8 | UInt64(bytes[i]) }
        return value
    }

    /// A length prefix, checked against what is left before anything of that size is made.
    private mutating func length(_ width: Int) throws -> Int {
        let value = try littleEndian(width)
        guard value <= UInt64(data.count - position) else {
            throw fail("declares \(value) bytes but only \(data.count - position) remain (truncated or corrupt)")
        }
        return Int(value)
    }

    private mutating func utf8(_ count: Int) throws -> String {
        guard let text = String(validating: try take(count), as: UTF8.self) else {
            throw fail("string is not valid UTF-8")
        }
        return text
    }

    private mutating func line() throws -> String {
        var bytes: [UInt8] = []
        while true {
            let b = try byte()
            if b == 0x0A { break }
            bytes.append(UInt8(b))
            guard bytes.count <= Unpickler.maxGlobalNameBytes else { throw fail("GLOBAL name is too long") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw fail("GLOBAL name is not UTF-8") }
        return text
    }

    // MARK: the object arena and the stack

    private mutating func make(_ object: PickleObject, depth d: Int = 0) throws -> Int {
        guard arena.count < Unpickler.maxObjects else {
            throw fail("more than \(Unpickler.maxObjects) objects (not a checkpoint's state dict)")
        }
        arena.append(object)
        depth.append(d)
        return arena.count - 1
    }

    private mutating func push(_ index: Int) throws {
        guard stack.count < Unpickler.maxStack else { throw fail("stack deeper than \(Unpickler.maxStack) entries") }
        stack.append(index)
    }

    private mutating func pushNew(_ object: PickleObject, children: [Int] = []) throws {
        let d = children.isEmpty ? (isContainer(object) ? 1 : 0) : 1 + children.map { depth[$0] }.max()!
        guard d <= Unpickler.maxDepth else { throw fail("objects nested more than \(Unpickler.maxDepth) levels deep") }
        try push(try make(object, depth: d))
    }

    private func isContainer(_ object: PickleObject) -> Bool {
        switch object {
        case .tuple, .list, .dict: true
        default: false
        }
    }

    private mutating func pop() throws -> Int {
        guard let top = stack.popLast() else { throw fail("pops from an empty stack") }
        if let mark = marks.last, stack.count < mark { throw fail("pops past a MARK") }
        return top
    }

    private mutating func popToMark() throws -> [Int] {
        guard let mark = marks.popLast() else { throw fail("no MARK to pop to") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    /// Records that `child` now sits inside `container` (for the depth bound).
    private mutating func nest(_ children: [Int], in container: Int) throws {
        guard let deepest = children.map({ depth[$0] }).max() else { return }
        depth[container] = max(depth[container], deepest + 1)
        guard depth[container] <= Unpickler.maxDepth else {
            throw fail("objects nested more than \(Unpickler.maxDepth) levels deep")
        }
    }

    private func describe(_ index: Int) -> String {
        switch arena[index] {
        case .none: "None"
        case .bool: "a bool"
        case .int: "an int"
        case .float: "a float"
        case .string(let s): "the string '\(s.prefix(60))'"
        case .bytes: "bytes"
        case .tuple: "a tuple"
        case .list: "a list"
        case .dict: "a dict"
        case .global(let g): "\(g)"
        case .storage: "a storage"
        case .tensor: "a tensor"
        }
    }

    // MARK: running

    /// Runs the pickle to its STOP and returns the arena index of the result.
    mutating func run() throws -> Int {
        while true {
            opcodeStart = position
            let op = try byte()
            switch op {
            case 0x80:  // PROTO
                let version = try byte()
                guard (2...5).contains(version) else { throw fail("pickle protocol \(version) is not 2 to 5") }
            case 0x95: _ = try take(8)  // FRAME: a length hint only
            case 0x2E:  // STOP
                guard stack.count == 1, marks.isEmpty else {
                    throw fail("STOP with \(stack.count) objects on the stack (expected exactly 1)")
                }
                return stack[0]
            case 0x28:  // MARK
                guard marks.count < Unpickler.maxDepth else {
                    throw fail("MARKs nested more than \(Unpickler.maxDepth) deep")
                }
                marks.append(stack.count)
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popToMark()  // POP_MARK
            case 0x4E: try pushNew(.none)  // NONE
            case 0x88: try pushNew(.bool(true))  // NEWTRUE
            case 0x89: try pushNew(.bool(false))  // NEWFALSE
            case 0x4A: try pushNew(.int(Int(Int32(truncatingIfNeeded: try littleEndian(4)))))  // BININT
            case 0x4B: try pushNew(.int(try byte()))  // BININT1
            case 0x4D: try pushNew(.int(Int(try littleEndian(2))))  // BININT2
            case 0x8A: try pushNew(.int(try long(try length(1))))  // LONG1
            case 0x8B: try pushNew(.int(try long(try length(4))))  // LONG4
            case 0x47:  // BINFLOAT: big-endian double
                let bytes = try take(8)
                var bits: UInt64 = 0
                for b in bytes { bits = bits << 8 | UInt64(b) }
                try pushNew(.float(Double(bitPattern: bits)))
            case 0x58: try pushNew(.string(try utf8(try length(4))))  // BINUNICODE
            case 0x8C: try pushNew(.string(try utf8(try length(1))))  // SHORT_BINUNICODE
            case 0x8D: try pushNew(.string(try utf8(try length(8))))  // BINUNICODE8
            case 0x55, 0x54:  // SHORT_BINSTRING, BINSTRING: Python 2 str, read as Latin-1
                let bytes = try take(try length(op == 0x55 ? 1 : 4))
                try pushNew(.string(String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))))
            case 0x43, 0x42, 0x8E:  // SHORT_BINBYTES, BINBYTES, BINBYTES8
                let count = try length(op == 0x43 ? 1 : op == 0x42 ? 4 : 8)
                _ = try take(count)
                try pushNew(.bytes(count: count))
            case 0x29: try pushNew(.tuple([]))  // EMPTY_TUPLE
            case 0x5D: try pushNew(.list([]))  // EMPTY_LIST
            case 0x7D: try pushNew(.dict([], ordered: false))  // EMPTY_DICT
            case 0x74:  // TUPLE
                let items = try popToMark()
                try pushNew(.tuple(items), children: items)
            case 0x85, 0x86, 0x87:  // TUPLE1, TUPLE2, TUPLE3
                var items: [Int] = []
                for _ in 0..<(op - 0x84) { items.insert(try pop(), at: 0) }
                try pushNew(.tuple(items), children: items)
            case 0x6C:  // LIST
                let items = try popToMark()
                try pushNew(.list(items), children: items)
            case 0x64:  // DICT
                let items = try popToMark()
                guard items.count % 2 == 0 else { throw fail("DICT with an odd number of items") }
                try pushNew(
                    .dict(stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }, ordered: false),
                    children: items)
            case 0x61:  // APPEND
                let item = try pop()
                try append([item])
            case 0x65: try append(try popToMark())  // APPENDS
            case 0x73:  // SETITEM
                let value = try pop()
                let key = try pop()
                try setItems([key, value])
            case 0x75: try setItems(try popToMark())  // SETITEMS
            case 0x71: try memoize(Int(try littleEndian(1)))  // BINPUT
            case 0x72: try memoize(Int(try littleEndian(4)))  // LONG_BINPUT
            case 0x94: try memoize(memo.count)  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let key = Int(try littleEndian(op == 0x68 ? 1 : 4))
                guard let index = memo[key] else { throw fail("memo entry \(key) was never stored") }
                try push(index)
            case 0x63:  // GLOBAL "module\nname\n"
                let module = try line()
                try pushGlobal(module: module, name: try line())
            case 0x93:  // STACK_GLOBAL
                let name = try pop()
                let module = try pop()
                guard case .string(let m) = arena[module], case .string(let n) = arena[name] else {
                    throw fail("STACK_GLOBAL needs two strings")
                }
                try pushGlobal(module: m, name: n)
            case 0x52:  // REDUCE
                let arguments = try pop()
                let callable = try pop()
                try push(try reduce(callable, arguments))
            case 0x62:  // BUILD
                let state = try pop()
                guard let target = stack.last else { throw fail("BUILD on an empty stack") }
                guard case .dict(_, ordered: true) = arena[target] else {
                    throw fail("BUILD (setting the state of an object) is only allowed on an OrderedDict")
                }
                // A state dict's OrderedDict carries `_metadata` (module versions) as its state: not needed.
                guard case .dict = arena[state] else { throw fail("BUILD with \(describe(state)) as the state") }
            case 0x51:  // BINPERSID
                try push(try persistentLoad(try pop()))
            default:
                let shown = (0x20..<0x7F).contains(op) ? " ('\(Character(Unicode.Scalar(UInt8(op))))')" : ""
                throw fail(
                    """
                    opcode 0x\(String(op, radix: 16))\(shown) is not allowed in a weights-only checkpoint (it builds \
                    arbitrary objects or is not written by torch.save)
                    """
                )
            }
        }
    }

    /// A little-endian two's-complement integer of `count` bytes that must fit in 64 bits.
    private mutating func long(_ count: Int) throws -> Int {
        guard count <= 8 else { throw fail("integer of \(count) bytes does not fit in 64 bits") }
        guard count > 0 else { return 0 }
        let raw = try littleEndian(count)
        let shift = UInt64(64 - 8 * count)
        return Int(Int64(bitPattern: raw << shift) >> Int64(shift))  // sign-extend
    }

    private mutating func memoize(_ key: Int) throws {
        guard let top = stack.last else { throw fail("memoizes from an empty stack") }
        guard memo.count < Unpickler.maxObjects || memo[key] != nil else {
            throw fail("more than \(Unpickler.maxObjects) memo entries")
        }
        memo[key] = top
    }

    private mutating func append(_ items: [Int]) throws {
        guard let target = stack.last, case .list(var list) = arena[target] else {
            throw fail("APPEND(S) to something that is not a list")
        }
        arena[target] = .none  // keep `list` uniquely referenced while it grows
        list.append(contentsOf: items)
        arena[target] = .list(list)
        try nest(items, in: target)
    }

    private mutating func setItems(_ items: [Int]) throws {
        guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
        guard let target = stack.last, case .dict(var pairs, let ordered) = arena[target] else {
            throw fail("SETITEM(S) on something that is not a dict")
        }
        for i in stride(from: 0, to: items.count, by: 2) {
            switch arena[items[i]] {
            case .string, .int, .bool, .none, .float: break
            default: throw fail("dict key is \(describe(items[i])) (only strings and numbers are allowed)")
            }
        }
        arena[target] = .none
        pairs.append(contentsOf: stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) })
        arena[target] = .dict(pairs, ordered: ordered)
        try nest(items, in: target)
    }

    private mutating func pushGlobal(module: String, name: String) throws {
        guard let global = PickleGlobal(module: module, name: name) else {
            throw fail(
                """
                refuses global '\(module).\(name)': a weights-only checkpoint may name only \
                torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, torch.<Type>Storage and \
                collections.OrderedDict (nothing was run)
                """
            )
        }
        try pushNew(.global(global))
    }

    private mutating func reduce(_ callable: Int, _ arguments: Int) throws -> Int {
        guard case .global(let global) = arena[callable] else {
            throw fail("REDUCE calls \(describe(callable)), which is not an allowed function (nothing was run)")
        }
        guard case .tuple(let args) = arena[arguments] else { throw fail("REDUCE arguments are not a tuple") }
        switch global {
        case .orderedDict:
            guard args.isEmpty else { throw fail("collections.OrderedDict called with arguments") }
            return try make(.dict([], ordered: true), depth: 1)
        case .rebuildParameter:
            guard args.count >= 1, case .tensor = arena[args[0]] else {
                throw fail("_rebuild_parameter without a tensor as its first argument")
            }
            return args[0]
        case .rebuildTensor:
            return try make(.tensor(try rebuildTensor(args)))
        case .storage:
            throw fail("REDUCE calls \(global) (storages come only from persistent ids)")
        }
    }

    private func integers(_ index: Int, _ what: String) throws -> [Int] {
        guard case .tuple(let items) = arena[index] else { throw fail("_rebuild_tensor_v2: \(what) is not a tuple") }
        return try items.map {
            guard case .int(let v) = arena[$0], v >= 0 else {
                throw fail("_rebuild_tensor_v2: \(what) holds \(describe($0)), expected non-negative integers")
            }
            return v
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
    private func rebuildTensor(_ args: [Int]) throws -> TorchTensorView {
        guard args.count == 6 || args.count == 7 else {
            throw fail("_rebuild_tensor_v2 with \(args.count) arguments (expected 6 or 7)")
        }
        guard case .storage(let storage) = arena[args[0]] else {
            throw fail("_rebuild_tensor_v2: first argument is \(describe(args[0])), not a storage")
        }
        guard case .int(let offset) = arena[args[1]], offset >= 0 else {
            throw fail("_rebuild_tensor_v2: storage offset is \(describe(args[1])), not a non-negative integer")
        }
        let shape = try integers(args[2], "size")
        let strides = try integers(args[3], "stride")
        guard shape.count == strides.count else {
            throw fail("_rebuild_tensor_v2: size \(shape) and stride \(strides) differ in length")
        }
        let available = storages[storage].count
        guard let count = checkedElementCount(shape) else { throw fail("tensor size \(shape) is too large") }
        if count > 0 {
            // The last element's index must lie inside the storage, with no arithmetic overflow on the way.
            var last = offset
            for (size, stride) in zip(shape, strides) {
                let (sum, overflow) = last.addingReportingOverflow(checkedProduct(size - 1, stride) ?? Int.max)
                guard !overflow, sum != Int.max else { throw fail("tensor size \(shape) stride \(strides) overflows") }
                last = sum
            }
            guard last < available else {
                throw fail(
                    """
                    tensor of size \(shape), stride \(strides) at offset \(offset) reaches element \(last) of storage \
                    '\(storages[storage].key)', which holds \(available) elements
                    """
                )
            }
            // A view repeating storage elements (stride 0) would make more values than the file holds.
            guard count <= available else {
                throw fail(
                    """
                    tensor of size \(shape) has \(count) elements but its storage '\(storages[storage].key)' holds \
                    only \(available) (an expanded view is not a weight)
                    """
                )
            }
        }
        return TorchTensorView(storage: storage, offset: offset, shape: shape, strides: strides, count: count)
    }

    /// Persistent id ('storage', torch.<Type>Storage, key, location, numel): the data entry `data/<key>`,
    /// whose size must be exactly numel elements of that type.
    private mutating func persistentLoad(_ pid: Int) throws -> Int {
        guard case .tuple(let f) = arena[pid], f.count == 5, case .string("storage") = arena[f[0]] else {
            throw fail("persistent id is not ('storage', type, key, location, numel)")
        }
        guard case .global(.storage(let dtype)) = arena[f[1]] else {
            throw fail("persistent id names \(describe(f[1])) as the storage type")
        }
        guard case .string(let key) = arena[f[2]], case .string = arena[f[3]] else {
            throw fail("persistent id's key and location are not strings")
        }
        guard case .int(let count) = arena[f[4]], count >= 0 else {
            throw fail("persistent id's element count is \(describe(f[4]))")
        }
        guard let bytes = storageBytes(key) else { throw fail("storage '\(key)' has no data/\(key) entry") }
        guard let needed = checkedProduct(count, dtype.byteSize), needed == bytes else {
            throw fail(
                """
                storage '\(key)' declares \(count) \(dtype.rawValue) elements (\(count)x\(dtype.byteSize) bytes) but \
                its data entry holds \(bytes) bytes
                """
            )
        }
        if let known = storageIndex[key] {
            guard storages[known].dtype == dtype else { throw fail("storage '\(key)' is used with two types") }
            return try make(.storage(known))
        }
        storages.append(TorchStorage(key: key, dtype: dtype, count: count))
        storageIndex[key] = storages.count - 1
        return try make(.storage(storages.count - 1))
    }
}
