"""A tiny H.264 + MP4 writer for the sandbox's result videos, in pure Python (no ffmpeg).

Every frame is one IDR picture made of ``I_PCM`` macroblocks: the raw 8-bit samples go into
the bitstream unpredicted and untransformed, so nothing has to be encoded, and the stream is
plain Constrained Baseline H.264 (profile 66, CAVLC, 4:2:0, Annex A) that every browser's
``<video>`` element decodes. The MP4 around it (ISO/IEC 14496-12 and -15) holds one ``avc1``
track with the SPS and PPS in ``avcC``, ``moov`` before ``mdat`` so playback starts at once.
Frames are small and few (a short side of 90–180 pixels, one frame per second) to keep files
small: the picture is a stand-in, its shape and length are what the sandbox promises.

Sources: ITU-T H.264 (08/2021) §7.3 (syntax), §7.4.2.1 (SPS), §7.3.5 (``pcm_sample_*``),
§9.1 (Exp-Golomb codes); ISO/IEC 14496-12 §8 (boxes), ISO/IEC 14496-15 §5.3 (``avcC``).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence

__all__ = ["h264_mp4"]

# A frame: (Y plane rows, Cb plane rows, Cr plane rows), each row a bytes of samples;
# Y is width × height, Cb and Cr (width/2) × (height/2), sizes padded to whole macroblocks.
Planes = tuple[list[bytes], list[bytes], list[bytes]]

_TIMESCALE = 1000  # movie and media time units per second


class _Bits:
    """An MSB-first bit writer with Exp-Golomb codes (H.264 §9.1)."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._acc = 0
        self._count = 0

    def u(self, bits: int, value: int) -> None:
        for shift in range(bits - 1, -1, -1):
            self._acc = (self._acc << 1) | ((value >> shift) & 1)
            self._count += 1
            if self._count == 8:
                self._out.append(self._acc)
                self._acc = self._count = 0

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() * 2 - 1, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        if self._count:
            self.u(8 - self._count, 0)

    def raw(self, data: bytes) -> None:
        assert self._count == 0
        self._out += data

    def trailing(self) -> bytes:
        """rbsp_trailing_bits (a stop bit, then zeros to the byte) and the bytes so far."""
        self.u(1, 1)
        self.align_zero()
        return bytes(self._out)


def _nal(header: int, rbsp: bytes) -> bytes:
    """A NAL unit: its header byte, then the payload with emulation prevention (§7.4.1)."""
    # Two zeros followed by a byte 0-3 get a 3 between them; the search resumes at that byte,
    # so a run of zeros is split every two (the same as a byte-by-byte count, at C speed).
    return bytes([header]) + _EMULATION.sub(b"\x00\x00\x03", rbsp)


_EMULATION = re.compile(rb"\x00\x00(?=[\x00-\x03])")


def _sps(width: int, height: int) -> bytes:
    mbs_w, mbs_h = -(-width // 16), -(-height // 16)
    bits = _Bits()
    bits.u(8, 66)  # profile_idc: Baseline
    bits.u(8, 0b11000000)  # constraint_set0 and set1: Constrained Baseline
    bits.u(8, 30)  # level_idc 3.0
    bits.ue(0)  # seq_parameter_set_id
    bits.ue(0)  # log2_max_frame_num_minus4
    bits.ue(2)  # pic_order_cnt_type: output order = decoding order
    bits.ue(1)  # max_num_ref_frames
    bits.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    bits.ue(mbs_w - 1)
    bits.ue(mbs_h - 1)
    bits.u(1, 1)  # frame_mbs_only_flag
    bits.u(1, 1)  # direct_8x8_inference_flag
    crop_right, crop_bottom = (mbs_w * 16 - width) // 2, (mbs_h * 16 - height) // 2
    bits.u(1, 1 if crop_right or crop_bottom else 0)  # frame_cropping_flag (units of 2 px)
    if crop_right or crop_bottom:
        for offset in (0, crop_right, 0, crop_bottom):  # left, right, top, bottom
            bits.ue(offset)
    bits.u(1, 0)  # vui_parameters_present_flag
    return _nal(0x67, bits.trailing())


def _pps() -> bytes:
    bits = _Bits()
    bits.ue(0)  # pic_parameter_set_id
    bits.ue(0)  # seq_parameter_set_id
    bits.u(1, 0)  # entropy_coding_mode_flag: CAVLC
    bits.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    bits.ue(0)  # num_slice_groups_minus1
    bits.ue(0)  # num_ref_idx_l0_default_active_minus1
    bits.ue(0)  # num_ref_idx_l1_default_active_minus1
    bits.u(1, 0)  # weighted_pred_flag
    bits.u(2, 0)  # weighted_bipred_idc
    bits.se(0)  # pic_init_qp_minus26
    bits.se(0)  # pic_init_qs_minus26
    bits.se(0)  # chroma_qp_index_offset
    bits.u(1, 0)  # deblocking_filter_control_present_flag
    bits.u(1, 0)  # constrained_intra_pred_flag
    bits.u(1, 0)  # redundant_pic_cnt_present_flag
    return _nal(0x68, bits.trailing())


def _idr_slice(planes: Planes, idr_pic_id: int) -> bytes:
    """One IDR picture as a single I slice of I_PCM macroblocks (mb_type 25, §7.3.5)."""
    luma, cb, cr = planes
    mbs_w, mbs_h = len(luma[0]) // 16, len(luma) // 16
    bits = _Bits()
    bits.ue(0)  # first_mb_in_slice
    bits.ue(7)  # slice_type: I (every slice of the picture)
    bits.ue(0)  # pic_parameter_set_id
    bits.u(4, 0)  # frame_num (log2_max_frame_num = 4)
    bits.ue(idr_pic_id)  # differs between consecutive IDR pictures
    bits.u(1, 0)  # dec_ref_pic_marking: no_output_of_prior_pics_flag
    bits.u(1, 0)  # long_term_reference_flag
    bits.se(0)  # slice_qp_delta
    for y in range(mbs_h):
        for x in range(mbs_w):
            bits.ue(25)  # mb_type I_PCM
            bits.align_zero()  # pcm_alignment_zero_bit
            bits.raw(b"".join(row[x * 16 : x * 16 + 16] for row in luma[y * 16 : y * 16 + 16]))
            for plane in (cb, cr):
                bits.raw(b"".join(row[x * 8 : x * 8 + 8] for row in plane[y * 8 : y * 8 + 8]))
    return _nal(0x65, bits.trailing())


def _box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full_box(kind: bytes, version_flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version_flags), *parts)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _moov(
    sps: bytes,
    pps: bytes,
    sizes: Sequence[int],
    mdat_offset: int,
    seconds: float,
    coded: tuple[int, int],
    shown: tuple[int, int],
) -> bytes:
    duration = round(seconds * _TIMESCALE)
    delta = duration // len(sizes)
    avcc = _box(
        b"avcC",
        bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]),
        struct.pack(">H", len(sps)) + sps,
        bytes([1]) + struct.pack(">H", len(pps)) + pps,
    )
    avc1 = _box(
        b"avc1",
        bytes(6) + struct.pack(">H", 1),  # reserved, data_reference_index
        bytes(16),  # pre_defined, reserved
        struct.pack(">HHII", coded[0], coded[1], 0x480000, 0x480000),
        bytes(4) + struct.pack(">H", 1) + bytes(32),  # reserved, frame_count, compressorname
        struct.pack(">Hh", 0x18, -1),
        avcc,
    )
    # The last sample lasts what is left, so the samples add up to the movie's duration.
    stts_entries = [(len(sizes) - 1, delta), (1, duration - delta * (len(sizes) - 1))]
    stts_entries = [entry for entry in stts_entries if entry[0]]
    stbl = _box(
        b"stbl",
        _full_box(b"stsd", 0, struct.pack(">I", 1), avc1),
        _full_box(
            b"stts",
            0,
            struct.pack(">I", len(stts_entries)),
            *(struct.pack(">II", n, d) for n, d in stts_entries),
        ),
        _full_box(b"stsc", 0, struct.pack(">IIII", 1, 1, len(sizes), 1)),
        _full_box(
            b"stsz", 0, struct.pack(">II", 0, len(sizes)), struct.pack(f">{len(sizes)}I", *sizes)
        ),
        _full_box(b"stco", 0, struct.pack(">II", 1, mdat_offset)),
    )
    minf = _box(
        b"minf",
        _full_box(b"vmhd", 1, bytes(8)),
        _box(b"dinf", _full_box(b"dref", 0, struct.pack(">I", 1), _full_box(b"url ", 1))),
        stbl,
    )
    mdia = _box(
        b"mdia",
        _full_box(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, _TIMESCALE, duration, 0x55C4, 0)),
        _full_box(b"hdlr", 0, bytes(4), b"vide", bytes(12), b"VideoHandler\x00"),
        minf,
    )
    tkhd = _full_box(
        b"tkhd",
        3,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, 1, 0, duration),
        bytes(8) + struct.pack(">hhhH", 0, 0, 0, 0),
        _MATRIX,
        struct.pack(">II", shown[0] << 16, shown[1] << 16),
    )
    mvhd = _full_box(
        b"mvhd",
        0,
        struct.pack(">IIII", 0, 0, _TIMESCALE, duration),
        struct.pack(">IH", 0x10000, 0x100) + bytes(10),  # rate 1.0, volume 1.0
        _MATRIX,
        bytes(24),
        struct.pack(">I", 2),  # next_track_ID
    )
    return _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))


def h264_mp4(
    coded: tuple[int, int],
    shown: tuple[int, int],
    seconds: float,
    frame: Callable[[int, int], Planes],
    fps: float = 1.0,
) -> bytes:
    """An MP4 of ``seconds`` (> 0) holding ``max(1, round(seconds * fps))`` H.264 frames of
    ``coded`` (width, height) pixels (even numbers), whose track header declares the
    presentation size ``shown``. ``frame(index, count)`` returns each frame's planes, padded to
    whole 16-pixel macroblocks."""
    count = max(1, round(seconds * fps))
    sps, pps = _sps(*coded), _pps()
    samples = []
    for index in range(count):
        nal = _idr_slice(frame(index, count), index % 2)
        samples.append(struct.pack(">I", len(nal)) + nal)
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41")
    sizes = [len(sample) for sample in samples]
    moov = _moov(sps, pps, sizes, 0, seconds, coded, shown)
    offset = len(ftyp) + len(moov) + 8  # the moov's length does not depend on the offset
    moov = _moov(sps, pps, sizes, offset, seconds, coded, shown)
    return ftyp + moov + _box(b"mdat", *samples)
