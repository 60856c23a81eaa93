# Ogg paging (RFC 3533) for Ogg Opus (RFC 7845): C declarations and the class layouts, for
# cimport by kernels that write or read Ogg Opus without a Python round trip.

from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef extern from "ac_ogg.h" nogil:
    void ac_ogg_init()
    uint32_t ac_ogg_crc_update(uint32_t crc, const unsigned char* p, size_t n)
    uint32_t ac_ogg_page_crc(const unsigned char* page, size_t len)
    int ac_ogg_page_check(const unsigned char* p, size_t avail, size_t* page_len)
    size_t ac_ogg_find_capture(const unsigned char* p, size_t n, size_t start)
    void ac_ogg_put_header(unsigned char* out, unsigned char flags, int64_t granule,
                           uint32_t serial, uint32_t seq, unsigned char nseg)
    void ac_ogg_seal(unsigned char* page, size_t len)
    uint32_t ac_load_le32(const unsigned char* p)
    uint64_t ac_load_le64(const unsigned char* p)
    void ac_store_le32(unsigned char* p, uint32_t v)
    enum:
        AC_OGG_HEADER
        AC_OGG_MAX_PAGE
        AC_OGG_CONTINUED
        AC_OGG_BOS
        AC_OGG_EOS
        AC_OGG_PAGE
        AC_OGG_NEED
        AC_OGG_E_CAPTURE
        AC_OGG_E_VERSION
        AC_OGG_E_FLAGS
        AC_OGG_E_CRC


cdef class OggPacket:
    cdef readonly bytes data
    cdef readonly long long granule
    cdef readonly unsigned int serial


cdef class OggOpusWriter:
    cdef uint32_t _serial
    cdef uint32_t _seq                # sequence number of the next page
    cdef int _channels
    cdef int _pre_skip
    cdef object _head_packet          # bytes
    cdef object _tags_packet          # bytes
    cdef int64_t _granule             # 48 kHz samples up to the end of the last packet written
    cdef int64_t _paged_granule       # ... up to the last packet completed on an emitted page
    cdef int64_t _max_page_samples    # 0: one page per packet
    cdef int _stage                   # 0 new, 1 headers emitted, 2 closed
    # Packets waiting for a page (batching only): their bytes, lengths and end granules. The
    # first _done bytes of the first one are already on a page (it continues).
    cdef unsigned char* _body
    cdef Py_ssize_t _body_len
    cdef Py_ssize_t _body_cap
    cdef Py_ssize_t _done
    cdef Py_ssize_t* _lens
    cdef int64_t* _grans
    cdef Py_ssize_t _npk
    cdef Py_ssize_t _pk_cap

    cdef bytes _add(self, packet, bint last, int64_t end_trim)
    cdef int _enqueue(self, const unsigned char* p, Py_ssize_t n, int64_t granule) except -1
    cdef bytes _emit(self, bint flush, bint eos)


cdef class OggOpusReader:
    cdef unsigned char* _buf          # bytes not yet parsed are _buf[_start:_have]
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _start
    cdef Py_ssize_t _have
    cdef long long _base              # stream offset of _buf[0]
    cdef bint _hunting                # after bad data: looking for the next "OggS"
    cdef unsigned char* _pkt          # a packet continued across pages
    cdef Py_ssize_t _pkt_len
    cdef Py_ssize_t _pkt_cap
    cdef Py_ssize_t _max_packet
    cdef bint _pending                # _pkt continues on the next page
    cdef bint _oversize               # the packet in progress is over the cap: dropping it
    cdef bint _lost                   # pages were lost: a continued packet has no start
    cdef bint _in_stream              # following an Opus stream (BOS seen, EOS not yet)
    cdef int _stage                   # 1 OpusTags expected, 2 audio
    cdef uint32_t _serial
    cdef uint32_t _seq
    cdef object _head
    cdef object _tags
    cdef list _held                   # packets of a feed that raised, returned next
    cdef object _error                # first error of the current feed: (message, offset)
    cdef int _errors
    cdef long long _skipped_pages

    cdef void _fail(self, str message, long long offset)
    cdef void _lose(self)
    cdef int _scan(self, list out) except -1
    cdef int _page(self, const unsigned char* p, Py_ssize_t page_len, long long offset,
                   list out) except -1
    cdef int _end_page(self, unsigned char flags, long long offset) except -1
    cdef int _append(self, const unsigned char* p, Py_ssize_t n, long long offset) except -1
    cdef int _begin(self, const unsigned char* p, int nseg, unsigned char flags,
                    uint32_t serial, uint32_t seq, long long offset) except -1
