#!/usr/bin/env python3
"""Fixtures for Tests/VolumeTests: real NIfTI files nobody here wrote, and what two independent readers
(nibabel and libnifti's nifti_tool) say about them. Not run in CI; needs nibabel, numpy and nifti_tool.

  python3 tools/make_volume_fixtures.py            # copy the files, write expected_nibabel.json
  python3 tools/make_volume_fixtures.py --check-written DIR
      # DIR holds files RAGSeg wrote (VolumeTests with RAGSEG_VOLUME_EXPORT_DIR=DIR) and manifest.json:
      # nibabel and nifti_tool must read each one as the manifest says.

Sources (both fetched through the ordinary package clients):
  nibabel 5.4.2 wheel (MIT, test data included): pip download nibabel==5.4.2 --no-deps
  Debian libnifti2-2 (public domain): apt-get download libnifti2-2; dpkg -x
Committed: anatomical.nii, example_nifti2.nii.gz, reoriented_anat_moved.nii (nibabel) and
ATestReferenceImageForReadingAndWriting.nii.gz (libnifti). example4d.nii.gz (346 KB) is not committed; with
--with-example4d it is copied next to them (git-ignored) and its test runs, else that test skips.
"""
import argparse
import glob
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

import nibabel as nib
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "VolumeTests", "Fixtures")
NIBABEL_FILES = ["anatomical.nii", "example_nifti2.nii.gz", "reoriented_anat_moved.nii", "example4d.nii.gz"]
COMMITTED_NIBABEL = NIBABEL_FILES[:3]
LIBNIFTI_FILE = "ATestReferenceImageForReadingAndWriting.nii.gz"


def fnv1a64(data: bytes) -> str:
    """FNV-1a 64-bit over bytes, as hex (the Swift tests compute the same over float32 little-endian)."""
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def float32_hash(array) -> str:
    return fnv1a64(np.asarray(array, dtype="<f4").tobytes(order="F"))


def fetch_sources(work):
    """Paths of the five files, from the nibabel wheel and the Debian package."""
    subprocess.run([sys.executable, "-m", "pip", "download", "nibabel==5.4.2", "--no-deps", "-d", work],
                   check=True, stdout=subprocess.DEVNULL)
    wheel = glob.glob(os.path.join(work, "nibabel-5.4.2-*.whl"))[0]
    paths = {}
    with zipfile.ZipFile(wheel) as z:
        for name in NIBABEL_FILES:
            target = os.path.join(work, name)
            with z.open(f"nibabel/tests/data/{name}") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            paths[name] = target
        with z.open("nibabel-5.4.2.dist-info/licenses/COPYING") as src:
            paths["COPYING"] = src.read().decode()
    subprocess.run(["apt-get", "download", "libnifti2-2"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    deb = glob.glob(os.path.join(work, "libnifti2-2_*.deb"))[0]
    subprocess.run(["dpkg", "-x", deb, os.path.join(work, "deb")], check=True)
    paths[LIBNIFTI_FILE] = os.path.join(work, "deb/usr/share/doc/libnifti2-2/examples", LIBNIFTI_FILE)
    paths["libnifti_copyright"] = open(os.path.join(work, "deb/usr/share/doc/libnifti2-2/copyright")).read()
    return paths


def raw_header(path):
    """The header exactly as stored (nibabel's loaded image header has vox_offset and scaling reset)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        start = f.read(4)
        f.seek(0)
        size = int.from_bytes(start, "little")
        if size not in (348, 540):
            size = int.from_bytes(start, "big")
        klass = nib.Nifti1Header if size == 348 else nib.Nifti2Header
        return klass.from_fileobj(f, check=False)


def sample_indices(count, n=12):
    return sorted(set(int(round(i * (count - 1) / (n - 1))) for i in range(n)) | {count // 3, count // 2 + 7})


def describe(path, name):
    """What nibabel reads: header fields, the three affines, values per frame and canonical order."""
    hdr = raw_header(path)
    img = nib.load(path)
    raw = np.asanyarray(img.dataobj.get_unscaled())
    scaled = img.get_fdata(dtype=np.float64)
    spatial = raw.shape[:3]
    frames = int(np.prod(raw.shape[3:])) if raw.ndim > 3 else 1
    raw_frames = raw.reshape(spatial + (frames,), order="F")
    scaled_frames = scaled.reshape(spatial + (frames,), order="F")
    n = int(np.prod(spatial))
    out = {
        "file": name,
        "version": 1 if isinstance(hdr, nib.Nifti1Header) and not isinstance(hdr, nib.Nifti2Header) else 2,
        "little_endian": hdr.endianness == "<",
        "dim": [int(x) for x in hdr["dim"]],
        "datatype": int(hdr["datatype"]),
        "pixdim": [float(x) for x in hdr["pixdim"]],
        "vox_offset": int(hdr["vox_offset"]),
        "scl_slope": float(hdr["scl_slope"]),
        "scl_inter": float(hdr["scl_inter"]),
        "qform_code": int(hdr["qform_code"]),
        "sform_code": int(hdr["sform_code"]),
        "quatern": [float(hdr[k]) for k in ("quatern_b", "quatern_c", "quatern_d")],
        "qoffset": [float(hdr[k]) for k in ("qoffset_x", "qoffset_y", "qoffset_z")],
        "srow": [[float(x) for x in hdr[k]] for k in ("srow_x", "srow_y", "srow_z")],
        "xyzt_units": int(hdr["xyzt_units"]),
        "intent_code": int(hdr["intent_code"]),
        "descrip": hdr["descrip"].item().decode("latin-1"),
        "affine": img.affine.tolist(),
        "qform_affine": hdr.get_qform().tolist(),
        "sform_affine": hdr.get_sform().tolist(),
        "axcodes": "".join(nib.aff2axcodes(img.affine)),
        "frames": frames,
        "slope_inter_applied": [float(x) for x in (img.dataobj.slope, img.dataobj.inter)],
        "raw_sum": float(raw.astype(np.float64).sum()),
        "samples_at": sample_indices(n),
        "frame_values": [],
    }
    for f in sorted({0, frames - 1}):
        flat_raw = raw_frames[..., f].reshape(-1, order="F")
        flat = scaled_frames[..., f].reshape(-1, order="F").astype(np.float32)
        out["frame_values"].append({
            "frame": f,
            "raw_samples": [float(flat_raw[i]) for i in out["samples_at"]],
            "samples": [float(flat[i]) for i in out["samples_at"]],
            "min": float(flat.min()),
            "max": float(flat.max()),
            "float32_fnv1a64": float32_hash(flat),
        })
    canonical = nib.as_closest_canonical(img)
    cdata = canonical.get_fdata(dtype=np.float64).reshape(canonical.shape[:3] + (frames,), order="F")[..., 0]
    out["canonical"] = {
        "shape": [int(x) for x in canonical.shape[:3]],
        "affine": canonical.affine.tolist(),
        "ornt": nib.orientations.io_orientation(img.affine).tolist(),
        "frame0_float32_fnv1a64": float32_hash(cdata.astype(np.float32)),
    }
    return out


def nifti_tool(args):
    return subprocess.run(["nifti_tool", *args], check=True, capture_output=True, text=True).stdout


def nim_fields(path):
    """libnifti's reading of a file (nifti_tool -disp_nim): name -> list of values as text."""
    fields = {}
    for line in nifti_tool(["-disp_nim", "-infiles", path]).splitlines():
        m = re.match(r"\s+(\w+)\s+\d+\s+(\d+)\s+(.*)$", line)
        if m:
            fields[m.group(1)] = m.group(3).split()
    return fields


def libnifti_value(path, index):
    """Voxel value (unscaled, as libnifti returns it) at a 7-D index, via nifti_tool -disp_ci."""
    out = nifti_tool(["-disp_ci", *[str(i) for i in index], "-infiles", path])
    return float(out.strip().splitlines()[-1].split()[0])


def check_with_libnifti(path, expected):
    """nifti_tool must agree with nibabel on dimensions, datatype, scaling, the affines and voxel values."""
    f = nim_fields(path)
    assert [int(x) for x in f["dim"]] == expected["dim"], (f["dim"], expected["dim"])
    assert int(f["datatype"][0]) == expected["datatype"]
    assert int(f["qform_code"][0]) == expected["qform_code"] and int(f["sform_code"][0]) == expected["sform_code"]
    slope = float(f["scl_slope"][0])
    if slope not in (0.0,) and np.isfinite(slope):
        assert np.allclose([slope, float(f["scl_inter"][0])], expected["slope_inter_applied"])
    if expected["qform_code"] > 0:
        # 1e-3, not 1e-5: libnifti takes the quaternion's a as 0 when 1 - b² - c² - d² < 1e-7, nibabel only
        # within 3 float epsilons (example_nifti2's qform differs by 1.4e-4 between the two for that reason).
        q = np.array([float(x) for x in f["qto_xyz"]]).reshape(4, 4)
        assert np.allclose(q, expected["qform_affine"], atol=1e-3), (q, expected["qform_affine"])
    if expected["sform_code"] > 0:
        s = np.array([float(x) for x in f["sto_xyz"]]).reshape(4, 4)
        assert np.allclose(s, expected["sform_affine"], atol=1e-5), (s, expected["sform_affine"])
    dims = expected["dim"][1:4]
    for fv in expected["frame_values"]:
        frame = fv["frame"]
        rest = list(np.unravel_index(frame, [max(1, d) for d in expected["dim"][4:8]], order="F"))
        for flat, value in list(zip(expected["samples_at"], fv["raw_samples"]))[:6]:
            ijk = list(np.unravel_index(flat, dims, order="F"))
            got = libnifti_value(path, ijk + rest)
            # nifti_tool prints floats with 6 decimals; integers exactly.
            assert abs(got - value) <= 1e-6 * max(1.0, abs(value)), (path, ijk + rest, got, value)


def main_fixtures(args):
    os.makedirs(FIXTURES, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        paths = fetch_sources(work)
        names = COMMITTED_NIBABEL + [LIBNIFTI_FILE] + (["example4d.nii.gz"] if args.with_example4d else [])
        for name in names:
            shutil.copyfile(paths[name], os.path.join(FIXTURES, name))
        expected = {}
        for name in COMMITTED_NIBABEL + [LIBNIFTI_FILE, "example4d.nii.gz"]:
            d = describe(paths[name], name)
            check_with_libnifti(paths[name], d)
            expected[name] = d
            print(f"{name}: nibabel and nifti_tool agree ({d['axcodes']}, dims {d['dim'][1:d['dim'][0] + 1]})")
        with open(os.path.join(FIXTURES, "expected_nibabel.json"), "w") as f:
            json.dump(expected, f, indent=1, sort_keys=True)
            f.write("\n")
        with open(os.path.join(FIXTURES, "LICENSES.txt"), "w") as f:
            f.write("Third-party test files in this folder and their licences.\n\n")
            f.write("anatomical.nii, example_nifti2.nii.gz, reoriented_anat_moved.nii (and example4d.nii.gz when present)\n")
            f.write("come from nibabel 5.4.2's nibabel/tests/data; nibabel's COPYING (its MIT part) covers them:\n\n")
            f.write(paths["COPYING"].split("3rd party code and data")[0])
            f.write("\n\nATestReferenceImageForReadingAndWriting.nii.gz comes from Debian's libnifti2-2 3.0.1\n")
            f.write("(/usr/share/doc/libnifti2-2/examples); Debian's copyright file for it:\n\n")
            text = paths["libnifti_copyright"]
            start = text.index("Files: debian/tests/data/ATestReference")
            f.write(text[start:text.index("Files: fsliolib")].rstrip() + "\n")


def main_check_written(args):
    """Files RAGSeg wrote must read back in nibabel and libnifti as RAGSeg says."""
    with open(os.path.join(args.check_written, "manifest.json")) as f:
        manifest = json.load(f)
    for entry in manifest:
        path = os.path.join(args.check_written, entry["file"])
        img = nib.load(path)
        hdr = raw_header(path)
        assert list(img.shape) == entry["shape"], (path, img.shape, entry["shape"])
        assert int(hdr["datatype"]) == entry["datatype"], path
        assert np.allclose(img.affine, entry["affine"], atol=1e-6), (path, img.affine, entry["affine"])
        for key in ("qform_code", "sform_code", "xyzt_units"):
            assert int(hdr[key]) == entry[key], (path, key)
        if "float32_fnv1a64" in entry:
            data = img.get_fdata(dtype=np.float64)
            assert float32_hash(data.astype(np.float32)) == entry["float32_fnv1a64"], path
        f = nim_fields(path)
        assert [int(x) for x in f["dim"]][: len(entry["shape"]) + 1] == [len(entry["shape"])] + entry["shape"], path
        print(f"{entry['file']}: nibabel and nifti_tool read it as written")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--with-example4d", action="store_true", help="also copy example4d.nii.gz (git-ignored)")
    parser.add_argument("--check-written", metavar="DIR", help="check files RAGSeg wrote (see above)")
    args = parser.parse_args()
    main_check_written(args) if args.check_written else main_fixtures(args)
