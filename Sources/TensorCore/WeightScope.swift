// Where model code gets its parameters: a tensor source (a checkpoint file, or seeded random values for
// benchmarks) read through scopes named after the module tree, like candle's `vb.pp("attn")` or
// mlx-swift's `@ModuleInfo(key:)`: `root["image_encoder"]["trunk"].tensor("pos_embed", shape: ...)`
// reads "image_encoder.trunk.pos_embed". Key renames between checkpoint layouts belong to the source,
// so modules only ever spell one (the reference implementation's) name.

/// Tensors by full dotted key. A source reports a missing or misshapen tensor as an error naming the
/// file and the key (the scope adds nothing to it).
public protocol TensorSource {
    /// The tensor stored under `key`; an error when it is missing or its shape is not `shape`.
    func tensor(_ key: String, shape: [Int]) throws -> Tensor
    /// The shape of the tensor under `key`, nil when there is none.
    func shape(_ key: String) -> [Int]?
}

/// A view of a `TensorSource` under a key prefix.
public struct WeightScope {
    public let source: any TensorSource
    /// Dotted prefix of every key read through this scope ("" at the root).
    public let prefix: String

    public init(_ source: any TensorSource, prefix: String = "") {
        self.source = source
        self.prefix = prefix
    }

    /// The full key of `name` in this scope.
    public func key(_ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }

    /// The scope of a child module (`name` may itself be dotted, e.g. "layers.3").
    public func child(_ name: String) -> WeightScope { WeightScope(source, prefix: key(name)) }
    public subscript(_ name: String) -> WeightScope { child(name) }
    /// The scope of the `index`-th entry of a module list (`layers.0`, `layers.1`, ...).
    public subscript(_ index: Int) -> WeightScope { child(String(index)) }

    public func tensor(_ name: String, shape: [Int]) throws -> Tensor { try source.tensor(key(name), shape: shape) }
    public func shape(_ name: String) -> [Int]? { source.shape(key(name)) }
    public func contains(_ name: String) -> Bool { shape(name) != nil }

    /// How many children `0, 1, ...` of this scope hold a tensor named `probe` (a module list's length).
    public func count(probe: String) -> Int {
        var n = 0
        while contains("\(n).\(probe)") { n += 1 }
        return n
    }
}

extension WeightScope {
    /// The length of a module list under this scope: how many children `0, 1, ...` hold a tensor named
    /// `probe`. An empty list is the source's "missing tensor" error for `0.probe`.
    public func moduleCount(probe: String) throws -> Int {
        let n = count(probe: probe)
        if n == 0 {
            _ = try tensor("0.\(probe)", shape: [])  // absent (count is 0), so the source throws its own error
            throw WeightScopeError(message: "missing tensor '\(key("0.\(probe)"))'")
        }
        return n
    }
}

/// A module list with no entries, from a source whose reads never fail (seeded random weights).
public struct WeightScopeError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}
