// The activations SAM 2's transformer blocks hand from one product to the next: fp32 (`Tensor`) or stored as
// bf16 (`BFloat16Tensor`, rounded once by whoever writes them; docs/bf16.md). Hiera's blocks and the
// memory-attention layers are written once, generic over this, and run with either.
import TensorCore

protocol BlockActivation {
    /// A layer norm's output of fp32 tokens.
    init(normalizing x: Tensor, with norm: LayerNorm)
    /// fp32 tokens (a product's output) with their first `rotatedRows` rows rotated by RoPE.
    init(rotating x: Tensor, rotatedRows: Int, rope: AxialRoPE)
    func reshaped(_ shape: [Int]) -> Self
    func windowPartitioned(_ window: Int) -> Self
    func maxPooled(rows: Int, columns: Int) -> Self
    /// A product whose output only other products read.
    func projected(by layer: Linear) -> Self
    /// The products of layers that read these tokens (q, k and v).
    func projected(by layers: [Linear]) -> [Self]
    /// A product whose output joins fp32 values (a shortcut, the residual stream, RoPE).
    func projectedToFP32(by layer: Linear) -> Tensor
    /// residual += the product of these tokens.
    func addProjection(by layer: Linear, into residual: inout Tensor)
    static func attention(query: Self, key: Self, value: Self, heads: Int) -> Self
    /// x += the MLP of these tokens.
    static func addFeedForward(
        into x: inout Tensor, input: Self, hidden: Linear, output: Linear, activation: FeedForwardActivation)
}

extension Tensor: BlockActivation {
    init(normalizing x: Tensor, with norm: LayerNorm) { self = norm(x) }
    init(rotating x: Tensor, rotatedRows: Int, rope: AxialRoPE) {
        self = x
        rope.rotate(&self, rows: 0..<rotatedRows)
    }
    func windowPartitioned(_ window: Int) -> Tensor { windowPartition(self, window: window) }
    func maxPooled(rows: Int, columns: Int) -> Tensor { maxPool2x2Grid(self, rows: rows, columns: columns) }
    func projected(by layer: Linear) -> Tensor { layer(self) }
    func projected(by layers: [Linear]) -> [Tensor] { linears(layers, sharing: self) }
    func projectedToFP32(by layer: Linear) -> Tensor { layer(self) }
    func addProjection(by layer: Linear, into residual: inout Tensor) { layer.add(self, into: &residual) }
    static func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int) -> Tensor {
        TensorCore.attention(query: query, key: key, value: value, heads: heads)
    }
    static func addFeedForward(
        into x: inout Tensor, input: Tensor, hidden: Linear, output: Linear, activation: FeedForwardActivation
    ) {
        TensorCore.addFeedForward(into: &x, input: input, hidden: hidden, output: output, activation: activation)
    }
}

extension BFloat16Tensor: BlockActivation {
    init(normalizing x: Tensor, with norm: LayerNorm) { self = norm.bfloat16(x) }
    init(rotating x: Tensor, rotatedRows: Int, rope: AxialRoPE) {
        self = rope.rotatedBFloat16(x, rotatedRows: rotatedRows)
    }
    func windowPartitioned(_ window: Int) -> BFloat16Tensor { windowPartition(self, window: window) }
    func maxPooled(rows: Int, columns: Int) -> BFloat16Tensor { maxPool2x2Grid(self, rows: rows, columns: columns) }
    func projected(by layer: Linear) -> BFloat16Tensor { layer.bfloat16(self) }
    func projected(by layers: [Linear]) -> [BFloat16Tensor] { layers.map { $0.bfloat16(self) } }
    func projectedToFP32(by layer: Linear) -> Tensor { layer(self) }
    func addProjection(by layer: Linear, into residual: inout Tensor) { layer.add(self, into: &residual) }
    static func attention(query: BFloat16Tensor, key: BFloat16Tensor, value: BFloat16Tensor, heads: Int)
        -> BFloat16Tensor
    {
        TensorCore.attention(query: query, key: key, value: value, heads: heads)
    }
    static func addFeedForward(
        into x: inout Tensor, input: BFloat16Tensor, hidden: Linear, output: Linear, activation: FeedForwardActivation
    ) {
        TensorCore.addFeedForward(into: &x, input: input, hidden: hidden, output: output, activation: activation)
    }
}
