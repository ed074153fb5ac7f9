// The values the restricted unpickler (Unpickler.swift) builds and the torch names it allows.

/// What the pickle built: plain values, containers (arena indices), and the torch objects we allow.
enum PickleObject {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes(count: Int)
    case tuple([Int])
    case list([Int])
    /// Key-value pairs of arena indices in insertion order (a later equal key wins when read).
    case dict([(key: Int, value: Int)], ordered: Bool)
    case global(PickleGlobal)
    /// Index into `Unpickler.storages`.
    case storage(Int)
    case tensor(TorchTensorView)
}

/// The only names a checkpoint's GLOBAL opcodes may refer to.
enum PickleGlobal: Equatable {
    case orderedDict
    case rebuildTensor
    case rebuildParameter
    case storage(SafeTensors.DType)

    static let storageTypes: [String: SafeTensors.DType] = [
        "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16, "DoubleStorage": .f64,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8, "ByteStorage": .u8,
        "BoolStorage": .bool,
    ]

    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensor
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch", _):
            guard let dtype = PickleGlobal.storageTypes[name] else { return nil }
            self = .storage(dtype)
        default: return nil
        }
    }
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage, checked to lie inside it.
struct TorchTensorView: Sendable {
    let storage: Int
    let offset: Int
    let shape: [Int]
    let strides: [Int]
    let count: Int
}

/// A storage the pickle refers to by persistent id ('storage', type, key, location, numel).
struct TorchStorage: Sendable {
    let key: String
    let dtype: SafeTensors.DType
    let count: Int
}

struct UnpicklingError: Error {
    let offset: Int
    let message: String
}
