// Volumes as support cases: an image volume and its label volume, checked together, become one case per
// chosen slice. A slice case is built exactly like a 2-D case (`CaseLoader.prepare`) from the slice's
// 8-bit gray image (`VolumeSliceImages`) and its label slice, so a slice indexed from NIfTI and the same
// slice exported as 8-bit gray PNGs are the same case: same content hash, same embedding and memories.
import Foundation
import RAGSegIO
import SupportBank

/// An image volume and its label volume to add.
public struct VolumeCaseSource: Equatable, Sendable {
    public var image: String
    public var labels: String
    /// The frame (channel) of a multi-frame image to read; nil: the image must have a single frame.
    public var frame: Int?

    public init(image: String, labels: String, frame: Int? = nil) {
        self.image = image
        self.labels = labels
        self.frame = frame
    }
}

/// How volumes become slices for one bank.
public struct VolumeSlicing: Sendable {
    public var axis: SliceAxis
    public var mapping: IntensityMapping
    /// Labels the bank declares (1...labelCount); one label: every nonzero voxel is the object.
    public var labelCount: Int
    public var limits: NIfTILimits

    public init(axis: SliceAxis, mapping: IntensityMapping, labelCount: Int, limits: NIfTILimits = NIfTILimits()) {
        self.axis = axis
        self.mapping = mapping
        self.labelCount = labelCount
        self.limits = limits
    }
}

/// A read and validated volume pair, cut into slices.
public struct VolumeCase: Sendable {
    public let source: VolumeCaseSource
    public let images: VolumeSliceImages
    public let labels: LabelSlices
    /// SHA-256 (hex) of the image file's bytes.
    public let volumeHash: String
    public let slicing: VolumeSlicing

    public var sliceCount: Int { images.count }

    /// Whether slice `index` holds any label.
    public func isLabelled(_ index: Int) -> Bool { labels.slice(index).contains { $0 != 0 } }

    /// The slices that become cases, ascending: every slice holding a label, and of the slices without
    /// any, the first and then every `emptyEvery`-th (0: none), so the bank holds empty-mask memories.
    public func selectedSlices(emptyEvery: Int) -> [Int] {
        var selected = [Int]()
        var empty = 0
        for index in 0..<sliceCount {
            if isLabelled(index) {
                selected.append(index)
            } else {
                if emptyEvery > 0 && empty % emptyEvery == 0 { selected.append(index) }
                empty += 1
            }
        }
        return selected
    }

    /// "PATH#axial:42": a case's image or mask name.
    public func sliceName(_ path: String, _ index: Int) -> String { "\(path)#\(slicing.axis.rawValue):\(index)" }

    /// Slice `index` as a loaded case, ready for `CaseLoader.prepare`.
    public func loadedCase(_ index: Int) -> LoadedCase {
        let image = images.image(index)
        let values = labels.slice(index)
        let mask = PNGImage.labelSlice(values, width: images.width, height: images.height)
        let labelMap: [UInt16] = slicing.labelCount == 1 ? values.map { $0 != 0 ? 1 : 0 } : values
        let present = Set(labelMap.lazy.filter { $0 != 0 }.map(Int.init)).sorted()
        let origin = SliceOrigin(
            volume: source.image, volumeHash: volumeHash, slice: index, axis: slicing.axis.rawValue,
            spacing: images.spacing)
        return LoadedCase(
            source: CaseSource(image: sliceName(source.image, index), mask: sliceName(source.labels, index)),
            image: image, labelMap: labelMap, labels: present,
            contentHash: CaseLoader.contentHash(image: image, mask: mask), labelCount: slicing.labelCount,
            origin: origin)
    }
}

public enum VolumeCaseLoader {
    /// Reads `source`'s image (its frame, intensities scaled; NaN/Inf refused) and label volume (integers
    /// 0...labelCount, unscaled), checks that they share one grid (`labelAffineTolerance`), and cuts both
    /// along `slicing.axis`. Every problem is an error naming the file; nothing is partly loaded.
    public static func load(_ source: VolumeCaseSource, slicing: VolumeSlicing) throws -> VolumeCase {
        // Read in place (NIfTI.open): slices are cut from the files' own voxels when a case is built, so
        // memory does not grow with the volume (a .nii.gz costs its uncompressed size in a temporary file).
        let volume = try NIfTI.open(source.image, limits: slicing.limits).intensities(
            frame: source.frame, name: source.image)
        let labelVolume = try NIfTI.open(source.labels, limits: slicing.limits).labels(name: source.labels)
        try checkSameGrid(
            shape: volume.shape, affine: volume.affine, labelShape: labelVolume.shape, labelAffine: labelVolume.affine,
            labelName: source.labels)
        if slicing.labelCount > 1 {
            var bad: (index: Int, value: UInt16)? = nil
            labelVolume.forEachChunk { first, values in
                guard bad == nil, let i = values.firstIndex(where: { Int($0) > slicing.labelCount }) else { return }
                bad = (first + i, values[i])
            }
            if let (i, value) = bad {
                let shape = labelVolume.shape
                throw RAGSegIOError(
                    path: source.labels,
                    message:
                        """
                        label value \(value) at voxel (\(i % shape[0]), \(i / shape[0] % shape[1]), \
                        \(i / (shape[0] * shape[1]))) is not a declared label of the bank (0...\(slicing.labelCount))
                        """
                )
            }
        }
        let images = try VolumeSliceImages(volume, axis: slicing.axis, mapping: slicing.mapping, name: source.image)
        let labels = try LabelSlices(labelVolume, axis: slicing.axis, name: source.labels)
        return VolumeCase(
            source: source, images: images, labels: labels, volumeHash: try fileSHA256(source.image),
            slicing: slicing)
    }

    /// Checks what the headers alone tell (both files readable as NIfTI within the limits and their sizes,
    /// the frame choice, the label map's dimensions and affine against the image's) and returns the number
    /// of slices along the axis: a whole dataset is checked this way before anything is stored.
    public static func checkHeaders(_ source: VolumeCaseSource, slicing: VolumeSlicing) throws -> Int {
        let image = try NIfTI.readHeader(source.image, limits: slicing.limits)
        let labels = try NIfTI.readHeader(source.labels, limits: slicing.limits)
        let frames = image.frameCount
        if let frame = source.frame {
            guard (0..<frames).contains(frame) else {
                throw RAGSegIOError(
                    path: source.image,
                    message:
                        "has \(frames) frame(s) (dimensions \(shapeText(image.shape))); frame \(frame) does not exist")
            }
        } else if frames > 1 {
            throw RAGSegIOError(
                path: source.image,
                message: "is \(image.dimensionCount)-D (\(shapeText(image.shape))) with \(frames) frames "
                    + "(time points or channels); choose one (--channel N, 0-based)")
        }
        guard labels.frameCount == 1 else {
            throw RAGSegIOError(
                path: source.labels, message: "a label map must be 3-D, this one is \(shapeText(labels.shape))")
        }
        guard labels.spatialShape == image.spatialShape else {
            throw RAGSegIOError(
                path: source.labels,
                message:
                    """
                    label map dimensions \(shapeText(labels.spatialShape)) differ from the image's \
                    \(shapeText(image.spatialShape))
                    """
            )
        }
        guard labels.affine.agrees(with: image.affine, tolerance: labelAffineTolerance) else {
            throw RAGSegIOError(
                path: source.labels,
                message:
                    "label map affine differs from the image's by up to \(labels.affine.maxDifference(image.affine)) "
                    + "(tolerance \(labelAffineTolerance) x max(1, |entry|)); "
                    + "label:\n\(labels.affine)\nimage:\n\(image.affine)"
            )
        }
        let orientation = try AxisOrientation.closest(to: image.affine, name: source.image)
        return image.spatialShape[orientation.worldAxis.firstIndex(of: slicing.axis.normal)!]
    }

    static func shapeText(_ shape: [Int]) -> String { shape.map(String.init).joined(separator: "x") }

    /// SHA-256 (hex) of a file's bytes, read in pieces.
    public static func fileSHA256(_ path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw RAGSegIOError(path: path, message: "cannot open to hash it")
        }
        defer { try? handle.close() }
        var hash = SHA256()
        while true {
            let chunk: Data?
            do { chunk = try handle.read(upToCount: 1 << 20) } catch {
                throw RAGSegIOError(path: path, message: "read failed while hashing: \(error.localizedDescription)")
            }
            guard let chunk, !chunk.isEmpty else { break }
            chunk.withUnsafeBytes { hash.update($0) }
        }
        return hexString(hash.finalize())
    }
}
