import Dispatch
import Foundation
import RAGSegIO
import TensorCore

/// The DINOv2 ViT image encoder (Oquab et al. 2023; registers: Darcet et al. 2024), inference only.
///
/// Forward pass = patch embedding, [CLS + pos, registers, patches + pos], `depth` pre-norm blocks, final
/// LayerNorm on every token. Matches transformers' `Dinov2Model` / `Dinov2WithRegistersModel`
/// `last_hidden_state` (docs/dinov2.md#architecture). Several images go through one forward as one [N·T, D] matrix,
/// so every linear layer is a single GEMM over the whole batch.
public struct DINOv2Model: Sendable {
    public let config: DINOv2Config
    public let keyLayout: DINOv2KeyLayout
    let patchEmbed: PatchEmbed
    let clsToken: Tensor  // [D]
    let registerTokens: Tensor  // [R, D]
    let position: PositionEmbedding
    let blocks: [Block]
    let norm: LayerNorm

    /// Loads `path`: a `.safetensors` file, a PyTorch state dict (torch hub's `dinov2_*_pretrain.pth`), or a
    /// directory holding `model.safetensors`. The architecture comes
    /// from `config` if given, else from a `config.json` beside the weights, else from the tensor shapes.
    public init(path: String, config explicitConfig: DINOv2Config? = nil) throws {
        var isDirectory: ObjCBool = false
        var file = path
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            file = (path as NSString).appendingPathComponent("model.safetensors")
        }
        let loader = try CheckpointLoader(file: try TensorFiles.open(file))
        let configPath = ((file as NSString).deletingLastPathComponent as NSString).appendingPathComponent(
            "config.json")
        let config: DINOv2Config
        var configFile = file
        if let explicitConfig {
            config = explicitConfig
        } else if FileManager.default.fileExists(atPath: configPath) {
            config = try DINOv2Config(configJSON: configPath)
            configFile = configPath
        } else {
            config = try loader.inferConfig()
        }
        try self.init(loader: loader, config: config, configFile: configFile)
    }

    /// `configFile`: where `c` came from (named in validation errors).
    init(loader: CheckpointLoader, config c: DINOv2Config, configFile: String) throws {
        try c.validate(against: loader, file: configFile)
        let d = c.hiddenSize
        let p = c.patchSize
        config = c
        keyLayout = loader.layout
        patchEmbed = PatchEmbed(
            weight: try loader.tensor(loader.patchName + ".weight", [d, 3, p, p]),
            bias: try loader.tensor(loader.patchName + ".bias", [d]))
        clsToken = try loader.tensor(loader.clsTokenName, [d])
        registerTokens =
            c.registers > 0 ? try loader.tensor(loader.registerTokensName, [c.registers, d]) : Tensor(zeros: [0, d])
        position = PositionEmbedding(
            table: try loader.tensor(loader.positionName, [1 + c.positionGrid * c.positionGrid, d]),
            grid: c.positionGrid, resampling: c.positionResampling)
        blocks = try (0..<c.depth).map { try loader.block($0, c) }
        let extra = loader.blockName(c.depth) + "norm1.weight"
        if loader.file.contains(extra) {
            throw RAGSegIOError(
                path: loader.file.path,
                message: "checkpoint has more blocks than the configured depth \(c.depth) ('\(extra)')")
        }
        norm = try loader.layerNorm(loader.finalNormName, c)
    }

    /// Tokens per image at a given input size: CLS, registers, patches.
    public func tokenCount(height: Int, width: Int) -> Int {
        let g = config.patchGrid(height: height, width: width)
        return 1 + config.registers + g.rows * g.columns
    }

    /// Final-normed tokens [N, T, D] (order: CLS, registers, patches row-major) for normalized pixels
    /// [N, 3, H, W] or [3, H, W]. H and W must be positive multiples of the patch size (14): the official code
    /// rejects other sizes and transformers silently crops, so we reject them rather than guess.
    public func forward(_ pixels: Tensor, name: String = "input") throws -> Tensor {
        let x4 = try validated(pixels, name: name)
        let n = x4.shape[0], h = x4.shape[2], w = x4.shape[3]
        guard n > 0 else { return Tensor(zeros: [0, tokenCount(height: h, width: w), config.hiddenSize]) }
        let grid = config.patchGrid(height: h, width: w)
        var x = embed(x4, grid: grid, pixelHeight: h, pixelWidth: w)
        for block in blocks { block(&x, images: n) }
        return norm(x).reshaped([n, x.shape[0] / n, config.hiddenSize])
    }

    /// Same result as `forward`, scheduled differently for batches: the images are split into one group per
    /// worker (`Threads.count`) and each group runs on its own core with single-threaded BLAS and loops, instead
    /// of every GEMM and loop being split across the cores. On a small machine this removes the per-op thread
    /// hand-offs and idle BLAS threads spinning against our own loops. Sets `Threads` to 1 for the duration
    /// (process-wide), so do not run other tensor work concurrently.
    public func forwardImageParallel(_ pixels: Tensor, name: String = "input") throws -> Tensor {
        let x4 = try validated(pixels, name: name)
        let n = x4.shape[0], workers = Threads.count
        guard workers > 1, n > 1 else { return try forward(x4, name: name) }
        let groups = min(workers, n)
        let parts = (0..<groups).map { g in sliced(x4, axis: 0, range: (g * n / groups)..<((g + 1) * n / groups)) }
        let results = GroupResults(count: groups)
        Threads.set(1)
        defer { Threads.set(workers) }
        DispatchQueue.concurrentPerform(iterations: groups) { g in
            results.store(g, Result { try forward(parts[g], name: name) })
        }
        return concatenated(try results.values(), axis: 0)
    }

    /// pixels as [N, 3, H, W] with H, W positive multiples of the patch size, or a thrown error naming `name`.
    private func validated(_ pixels: Tensor, name: String) throws -> Tensor {
        let x4 = pixels.rank == 3 ? pixels.reshaped([1] + pixels.shape) : pixels
        guard x4.rank == 4, x4.shape[1] == 3 else {
            throw RAGSegIOError(path: name, message: "expected pixels [N, 3, H, W], got \(pixels.shape)")
        }
        let h = x4.shape[2], w = x4.shape[3], p = config.patchSize
        guard h > 0, w > 0, h % p == 0, w % p == 0 else {
            throw RAGSegIOError(
                path: name, message: "input size \(h)x\(w) is not a positive multiple of the patch size \(p)")
        }
        return x4
    }

    /// Final-normed CLS embeddings [N, D] (transformers' `pooler_output`, torch hub's `model(x)`).
    /// `imageParallel` picks `forwardImageParallel` (same values, different scheduling).
    public func clsEmbeddings(_ pixels: Tensor, name: String = "input", imageParallel: Bool = false) throws -> Tensor {
        let tokens = imageParallel ? try forwardImageParallel(pixels, name: name) : try forward(pixels, name: name)
        let n = tokens.shape[0], t = tokens.shape[1], d = tokens.shape[2]
        return Tensor(shape: [n, d]) { out in
            tokens.withUnsafeBufferPointer { src in
                for i in 0..<n { (out.baseAddress! + i * d).update(from: src.baseAddress! + i * t * d, count: d) }
            }
        }
    }

    /// Token assembly: [CLS + pos₀, registers (no position), patch + pos] per image -> [N·T, D].
    private func embed(_ pixels: Tensor, grid: (rows: Int, columns: Int), pixelHeight: Int, pixelWidth: Int) -> Tensor {
        let n = pixels.shape[0], d = config.hiddenSize
        let patches = grid.rows * grid.columns, r = config.registers, t = 1 + r + patches
        let patchTokens = patchEmbed(pixels)  // [N·Np, D]
        let pos = position.rows(
            gridRows: grid.rows, gridColumns: grid.columns, pixelHeight: pixelHeight, pixelWidth: pixelWidth)
        return Tensor(shape: [n * t, d]) { out in
            patchTokens.withUnsafeBufferPointer { pt in
                pos.withUnsafeBufferPointer { ps in
                    clsToken.withUnsafeBufferPointer { cls in
                        registerTokens.withUnsafeBufferPointer { reg in
                            let o = out.baseAddress!
                            for image in 0..<n {
                                let base = o + image * t * d
                                for j in 0..<d { base[j] = cls[j] + ps[j] }
                                if r > 0 { (base + d).update(from: reg.baseAddress!, count: r * d) }
                                for k in 0..<patches {
                                    let dst = base + (1 + r + k) * d
                                    let src = pt.baseAddress! + (image * patches + k) * d,
                                        pr = ps.baseAddress! + (1 + k) * d
                                    for j in 0..<d { dst[j] = src[j] + pr[j] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Per-group outputs of `forwardImageParallel`, written from concurrent workers (distinct slots, under a lock).
private final class GroupResults: @unchecked Sendable {
    private var slots: [Result<Tensor, any Error>?]
    private let lock = NSLock()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func store(_ index: Int, _ result: Result<Tensor, any Error>) {
        lock.lock()
        slots[index] = result
        lock.unlock()
    }

    func values() throws -> [Tensor] { try slots.map { try $0!.get() } }
}
