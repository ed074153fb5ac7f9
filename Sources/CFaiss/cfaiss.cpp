// extern "C" wrapper over FAISS; see include/cfaiss.h for the contract and the file format.
#include "cfaiss.h"

#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <omp.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

thread_local std::string last_error;

void set_error(const std::string &message) { last_error = message; }

// Runs body, turning every exception into a thread-local message; returns on_error on failure.
template <typename T, typename F> T guarded(T on_error, F body) {
    try {
        return body();
    } catch (const faiss::FaissException &e) {
        set_error(std::string("faiss: ") + e.what());
    } catch (const std::bad_alloc &) {
        set_error("faiss: out of memory");
    } catch (const std::exception &e) {
        set_error(std::string("faiss: ") + e.what());
    } catch (...) {
        set_error("faiss: unknown exception");
    }
    return on_error;
}

faiss::Index *as_index(cfaiss_index *p) { return reinterpret_cast<faiss::Index *>(p); }
const faiss::Index *as_index(const cfaiss_index *p) { return reinterpret_cast<const faiss::Index *>(p); }

// The index under an id map (or the index itself).
const faiss::Index *base_index(const faiss::Index *index) {
    if (auto map = dynamic_cast<const faiss::IndexIDMap *>(index)) return map->index;
    return index;
}

// ---- CRC-32 (IEEE, reflected), slicing-by-8: checksums whole index files, so it must be fast.
struct Crc32Tables {
    uint32_t t[8][256];
    Crc32Tables() {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; i++)
            for (int s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    }
};
const Crc32Tables &crc_tables() {
    static const Crc32Tables tables;
    return tables;
}
// Running CRC: pass the previous return value (start with 0).
uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    const auto &t = crc_tables().t;
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo, hi;
        std::memcpy(&lo, p, 4);
        std::memcpy(&hi, p + 4, 4);
        lo ^= crc;  // little-endian host (x86_64/arm64)
        crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
              t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

constexpr char kMagic[8] = {'R', 'S', 'G', 'F', 'A', 'I', 'S', 'S'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderSize = 32;

struct FixedHeader {
    char magic[8];
    uint32_t version;
    uint32_t user_len;
    uint64_t payload_len;
    uint32_t crc;
    uint32_t reserved;
};
static_assert(sizeof(FixedHeader) == kHeaderSize, "header layout");

// Streams FAISS output to a FILE*, counting bytes and updating the CRC as it goes.
struct ChecksumFileWriter : faiss::IOWriter {
    FILE *f;
    uint32_t crc = 0;
    uint64_t bytes = 0;
    explicit ChecksumFileWriter(FILE *file, uint32_t initial) : f(file), crc(initial) { name = "index file"; }
    size_t operator()(const void *ptr, size_t size, size_t nitems) override {
        size_t total = size * nitems;
        if (total == 0) return nitems;
        size_t written = fwrite(ptr, 1, total, f);
        crc = crc32_update(crc, static_cast<const uint8_t *>(ptr), written);
        bytes += written;
        return size ? written / size : 0;
    }
};

struct File {
    FILE *f = nullptr;
    ~File() {
        if (f) fclose(f);
    }
};

std::string errno_message(const std::string &what, const std::string &path) {
    return what + " " + path + ": " + std::strerror(errno);
}

void fsync_directory_of(const std::string &path) {
    std::string dir = ".";
    auto slash = path.find_last_of('/');
    if (slash != std::string::npos) dir = slash == 0 ? "/" : path.substr(0, slash);
    int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);  // best effort: some file systems refuse fsync on directories
        close(fd);
    }
}

}  // namespace

extern "C" int ragseg_faiss_version_major(void) { return FAISS_VERSION_MAJOR; }

extern "C" const char *cfaiss_last_error(void) { return last_error.c_str(); }

extern "C" cfaiss_index *cfaiss_create(int dimension, const char *factory) {
    return guarded<cfaiss_index *>(nullptr, [&]() -> cfaiss_index * {
        if (dimension <= 0) {
            set_error("faiss: dimension must be positive");
            return nullptr;
        }
        std::unique_ptr<faiss::Index> index(
            faiss::index_factory(dimension, factory, faiss::METRIC_INNER_PRODUCT));
        // IVF indexes take ids natively; everything else goes behind an IndexIDMap2 (which also
        // keeps the reverse map that remove_ids needs).
        if (dynamic_cast<faiss::IndexIVF *>(index.get()) == nullptr &&
            dynamic_cast<faiss::IndexIDMap *>(index.get()) == nullptr) {
            auto map = new faiss::IndexIDMap2(index.get());
            map->own_fields = true;
            index.release();
            index.reset(map);
        }
        return reinterpret_cast<cfaiss_index *>(index.release());
    });
}

extern "C" void cfaiss_free(cfaiss_index *index) {
    guarded<int>(0, [&]() {
        delete as_index(index);
        return 0;
    });
}

extern "C" int cfaiss_dimension(const cfaiss_index *index) { return as_index(index)->d; }
extern "C" int64_t cfaiss_ntotal(const cfaiss_index *index) { return as_index(index)->ntotal; }
extern "C" int cfaiss_is_trained(const cfaiss_index *index) { return as_index(index)->is_trained ? 1 : 0; }

extern "C" int cfaiss_supports_removal(const cfaiss_index *index) {
    return dynamic_cast<const faiss::IndexHNSW *>(base_index(as_index(index))) ? 0 : 1;
}

extern "C" int cfaiss_train(cfaiss_index *index, int64_t n, const float *vectors) {
    return guarded<int>(-1, [&]() {
        as_index(index)->train(n, vectors);
        return 0;
    });
}

extern "C" int cfaiss_add_with_ids(cfaiss_index *index, int64_t n, const float *vectors, const int64_t *ids) {
    return guarded<int>(-1, [&]() {
        auto ix = as_index(index);
        if (!ix->is_trained) {
            set_error("faiss: index is not trained");
            return -1;
        }
        ix->add_with_ids(n, vectors, ids);
        return 0;
    });
}

extern "C" int cfaiss_search(const cfaiss_index *index, int64_t n, const float *queries, int64_t k,
                             float *distances, int64_t *labels) {
    return guarded<int>(-1, [&]() {
        as_index(index)->search(n, queries, k, distances, labels);
        return 0;
    });
}

extern "C" int64_t cfaiss_remove_ids(cfaiss_index *index, int64_t n, const int64_t *ids) {
    return guarded<int64_t>(-1, [&]() -> int64_t {
        if (!cfaiss_supports_removal(index)) {
            set_error("faiss: this index type (HNSW) cannot remove ids");
            return -1;
        }
        faiss::IDSelectorBatch selector(n, ids);
        return static_cast<int64_t>(as_index(index)->remove_ids(selector));
    });
}

extern "C" int64_t cfaiss_get_ids(const cfaiss_index *index, int64_t *ids, int64_t capacity) {
    return guarded<int64_t>(-1, [&]() -> int64_t {
        auto ix = as_index(index);
        if (ix->ntotal > capacity) {
            set_error("faiss: id buffer too small");
            return -1;
        }
        if (auto map = dynamic_cast<const faiss::IndexIDMap *>(ix)) {
            std::memcpy(ids, map->id_map.data(), map->id_map.size() * sizeof(int64_t));
            return int64_t(map->id_map.size());
        }
        if (auto ivf = dynamic_cast<const faiss::IndexIVF *>(ix)) {
            int64_t count = 0;
            for (size_t list = 0; list < ivf->nlist; list++) {
                size_t size = ivf->invlists->list_size(list);
                if (size == 0) continue;
                faiss::InvertedLists::ScopedIds list_ids(ivf->invlists, list);
                std::memcpy(ids + count, list_ids.get(), size * sizeof(int64_t));
                count += int64_t(size);
            }
            return count;
        }
        set_error("faiss: cannot enumerate ids of this index type");
        return -1;
    });
}

extern "C" int cfaiss_reconstruct(const cfaiss_index *index, int64_t id, float *vector) {
    return guarded<int>(-1, [&]() {
        auto map = dynamic_cast<const faiss::IndexIDMap2 *>(as_index(index));
        if (!map) {
            set_error("faiss: reconstruct by id needs an IndexIDMap2");
            return -1;
        }
        map->reconstruct(id, vector);  // throws when the id is absent
        return 0;
    });
}

extern "C" int cfaiss_set_search_parameter(cfaiss_index *index, const char *name, double value) {
    return guarded<int>(-1, [&]() {
        auto base = const_cast<faiss::Index *>(base_index(as_index(index)));
        std::string key(name);
        if (key == "efSearch") {
            if (auto hnsw = dynamic_cast<faiss::IndexHNSW *>(base)) {
                hnsw->hnsw.efSearch = static_cast<int>(value);
                return 0;
            }
        } else if (key == "nprobe") {
            if (auto ivf = dynamic_cast<faiss::IndexIVF *>(base)) {
                ivf->nprobe = static_cast<size_t>(value);
                return 0;
            }
        }
        set_error("faiss: parameter " + key + " does not apply to this index type");
        return -1;
    });
}

extern "C" void cfaiss_set_num_threads(int n) { omp_set_num_threads(n < 1 ? 1 : n); }
extern "C" int cfaiss_get_num_threads(void) { return omp_get_max_threads(); }

extern "C" int cfaiss_write(const cfaiss_index *index, const char *path, const uint8_t *user, size_t user_len) {
    return guarded<int>(-1, [&]() {
        std::string target(path);
        std::string temp = target + ".tmp." + std::to_string(getpid());
        File file;
        file.f = fopen(temp.c_str(), "wb");
        if (!file.f) {
            set_error(errno_message("cannot create", temp));
            return -1;
        }
        FixedHeader header{};
        std::memcpy(header.magic, kMagic, 8);
        header.version = kVersion;
        header.user_len = static_cast<uint32_t>(user_len);
        bool ok = fwrite(&header, 1, kHeaderSize, file.f) == kHeaderSize;
        if (ok && user_len) ok = fwrite(user, 1, user_len, file.f) == user_len;
        uint32_t crc = user_len ? crc32_update(0, user, user_len) : 0;
        ChecksumFileWriter writer(file.f, crc);
        if (ok) {
            try {
                faiss::write_index(as_index(index), &writer);
            } catch (...) {
                fclose(file.f);
                file.f = nullptr;
                unlink(temp.c_str());
                throw;
            }
        }
        header.payload_len = writer.bytes;
        header.crc = writer.crc;
        ok = ok && fseek(file.f, 0, SEEK_SET) == 0 && fwrite(&header, 1, kHeaderSize, file.f) == kHeaderSize;
        ok = ok && fflush(file.f) == 0 && fsync(fileno(file.f)) == 0;
        if (!ok) {
            set_error(errno_message("cannot write", temp));
            fclose(file.f);
            file.f = nullptr;
            unlink(temp.c_str());
            return -1;
        }
        fclose(file.f);
        file.f = nullptr;
        if (rename(temp.c_str(), target.c_str()) != 0) {
            set_error(errno_message("cannot rename onto", target));
            unlink(temp.c_str());
            return -1;
        }
        fsync_directory_of(target);
        return 0;
    });
}

extern "C" cfaiss_index *cfaiss_read(const char *path, uint8_t **user, size_t *user_len) {
    *user = nullptr;
    *user_len = 0;
    return guarded<cfaiss_index *>(nullptr, [&]() -> cfaiss_index * {
        std::string name(path);
        File file;
        file.f = fopen(path, "rb");
        if (!file.f) {
            set_error(errno_message("cannot open", name));
            return nullptr;
        }
        struct stat st;
        if (fstat(fileno(file.f), &st) != 0) {
            set_error(errno_message("cannot stat", name));
            return nullptr;
        }
        FixedHeader header{};
        if (fread(&header, 1, kHeaderSize, file.f) != kHeaderSize || std::memcmp(header.magic, kMagic, 8) != 0) {
            set_error(name + ": not a RAGSeg FAISS index file (bad magic)");
            return nullptr;
        }
        if (header.version != kVersion) {
            set_error(name + ": unsupported index file version " + std::to_string(header.version));
            return nullptr;
        }
        uint64_t expected = kHeaderSize + uint64_t(header.user_len) + header.payload_len;
        if (uint64_t(st.st_size) != expected) {
            set_error(name + ": truncated or padded (size " + std::to_string(st.st_size) + ", header says " +
                      std::to_string(expected) + ")");
            return nullptr;
        }
        // Verify the checksum over everything after the fixed header before FAISS parses anything.
        std::unique_ptr<uint8_t[], void (*)(void *)> user_bytes(
            static_cast<uint8_t *>(std::malloc(header.user_len ? header.user_len : 1)), std::free);
        if (!user_bytes) throw std::bad_alloc();
        if (header.user_len && fread(user_bytes.get(), 1, header.user_len, file.f) != header.user_len) {
            set_error(errno_message("cannot read", name));
            return nullptr;
        }
        uint32_t crc = header.user_len ? crc32_update(0, user_bytes.get(), header.user_len) : 0;
        std::unique_ptr<uint8_t[]> buffer(new uint8_t[1 << 20]);
        uint64_t remaining = header.payload_len;
        while (remaining > 0) {
            size_t chunk = remaining < (1u << 20) ? size_t(remaining) : size_t(1u << 20);
            if (fread(buffer.get(), 1, chunk, file.f) != chunk) {
                set_error(errno_message("cannot read", name));
                return nullptr;
            }
            crc = crc32_update(crc, buffer.get(), chunk);
            remaining -= chunk;
        }
        if (crc != header.crc) {
            set_error(name + ": checksum mismatch (file is corrupt)");
            return nullptr;
        }
        if (fseek(file.f, long(kHeaderSize + header.user_len), SEEK_SET) != 0) {
            set_error(errno_message("cannot seek", name));
            return nullptr;
        }
        faiss::FileIOReader reader(file.f);
        std::unique_ptr<faiss::Index> index(faiss::read_index(&reader));
        if (index->metric_type != faiss::METRIC_INNER_PRODUCT) {
            set_error(name + ": index metric is not inner product");
            return nullptr;
        }
        *user = header.user_len ? user_bytes.release() : nullptr;
        *user_len = header.user_len;
        return reinterpret_cast<cfaiss_index *>(index.release());
    });
}

extern "C" void cfaiss_free_bytes(uint8_t *bytes) { std::free(bytes); }
