package dev.edgetl.core;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Reads the zip of associated files ({@code labels.txt}, {@code edgetl.json}) appended to a .tflite model.
 *
 * <p>TFLite Model Metadata stores associated files as a zip archive after the flatbuffer. Writers
 * differ in where they count the zip's offsets from: Python's {@code zipfile} in append mode writes
 * offsets from the start of the whole file, while a zip built separately and concatenated counts
 * them from the zip's own start. Like Python's {@code zipfile}, this reader finds the central
 * directory from the end-of-central-directory record and corrects every offset by the difference
 * between where the directory is and where the record says it is, so both layouts read.
 *
 * <p>It works on a {@link ByteBuffer} so that the app can read a memory-mapped asset without
 * copying it; {@code java.util.zip.ZipFile} needs a file, which an Android asset is not.
 */
public final class AssociatedFiles {
    private static final int EOCD_SIGNATURE = 0x06054b50;
    private static final int CEN_SIGNATURE = 0x02014b50;
    private static final int LOC_SIGNATURE = 0x04034b50;
    private static final int EOCD_SIZE = 22;
    private static final int MAX_COMMENT = 0xFFFF;
    /** Associated files are small text files; refuse anything that would exhaust a phone's memory. */
    private static final int MAX_ENTRY_BYTES = 64 << 20;

    private AssociatedFiles() {}

    /** Reads the associated files of a model held in a byte array. */
    public static Map<String, byte[]> read(byte[] model) {
        return read(ByteBuffer.wrap(model));
    }

    /**
     * Reads every file of the zip appended to {@code model} (name to content).
     *
     * @param model the whole .tflite file; its position and limit are not changed
     * @return the files in archive order, or an empty map when the model carries no zip
     * @throws MetadataException if a zip is there but corrupt, encrypted, ZIP64 or uses an unknown method
     */
    public static Map<String, byte[]> read(ByteBuffer model) {
        ByteBuffer buf = model.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int base = buf.position();
        int length = buf.limit() - base;
        int eocd = findEndRecord(buf, base, length);
        if (eocd < 0) {
            return Collections.emptyMap();
        }
        int entries = u16(buf, eocd + 10);
        long cdSize = u32(buf, eocd + 12);
        long cdOffset = u32(buf, eocd + 16);
        if (entries == 0xFFFF || cdSize == 0xFFFFFFFFL || cdOffset == 0xFFFFFFFFL) {
            throw new MetadataException("The model's associated-files zip is ZIP64, which is not supported");
        }
        long cdStart = (eocd - base) - cdSize;
        long concat = cdStart - cdOffset; // bytes before the zip that its offsets do not count
        if (cdStart < 0 || concat < 0) {
            throw new MetadataException("The model's associated-files zip is corrupt (central directory out of range)");
        }
        Map<String, byte[]> files = new LinkedHashMap<>();
        long p = cdStart;
        for (int i = 0; i < entries; i++) {
            int at = checkedIndex(base, p, 46, length);
            if (buf.getInt(at) != CEN_SIGNATURE) {
                throw new MetadataException("The model's associated-files zip is corrupt (bad central directory entry " + i + ")");
            }
            int flags = u16(buf, at + 8);
            int method = u16(buf, at + 10);
            long crc = u32(buf, at + 16);
            long compressedSize = u32(buf, at + 20);
            long size = u32(buf, at + 24);
            int nameLength = u16(buf, at + 28);
            int extraLength = u16(buf, at + 30);
            int commentLength = u16(buf, at + 32);
            long localOffset = u32(buf, at + 42) + concat;
            String name = new String(bytes(buf, checkedIndex(base, p + 46, nameLength, length), nameLength),
                    StandardCharsets.UTF_8);
            if ((flags & 1) != 0) {
                throw new MetadataException("Associated file '" + name + "' is encrypted");
            }
            if (size > MAX_ENTRY_BYTES || compressedSize > MAX_ENTRY_BYTES) {
                throw new MetadataException("Associated file '" + name + "' is too large (" + size + " bytes)");
            }
            int loc = checkedIndex(base, localOffset, 30, length);
            if (buf.getInt(loc) != LOC_SIGNATURE) {
                throw new MetadataException("The model's associated-files zip is corrupt (bad local header for '" + name + "')");
            }
            long dataStart = localOffset + 30 + u16(buf, loc + 26) + u16(buf, loc + 28);
            byte[] stored = bytes(buf, checkedIndex(base, dataStart, compressedSize, length), (int) compressedSize);
            byte[] content = decode(stored, method, (int) size, name);
            CRC32 check = new CRC32();
            check.update(content);
            if (check.getValue() != crc) {
                throw new MetadataException("Associated file '" + name + "' fails its CRC check");
            }
            if (!name.endsWith("/")) {
                files.put(name, content);
            }
            p += 46L + nameLength + extraLength + commentLength;
        }
        return Collections.unmodifiableMap(files);
    }

    private static int findEndRecord(ByteBuffer buf, int base, int length) {
        int lowest = Math.max(0, length - EOCD_SIZE - MAX_COMMENT);
        for (int i = length - EOCD_SIZE; i >= lowest; i--) {
            // The record must be the last thing in the file: its comment runs exactly to the end.
            if (buf.getInt(base + i) == EOCD_SIGNATURE && i + EOCD_SIZE + u16(buf, base + i + 20) == length) {
                return base + i;
            }
        }
        return -1;
    }

    private static byte[] decode(byte[] stored, int method, int size, String name) {
        if (method == 0) {
            if (stored.length != size) {
                throw new MetadataException("Associated file '" + name + "' has inconsistent sizes");
            }
            return stored;
        }
        if (method != 8) {
            throw new MetadataException("Associated file '" + name + "' uses unsupported compression method " + method);
        }
        Inflater inflater = new Inflater(true);
        try {
            inflater.setInput(stored);
            byte[] out = new byte[size];
            int n = 0;
            while (n < size && !inflater.finished()) {
                int got = inflater.inflate(out, n, size - n);
                if (got == 0 && (inflater.needsInput() || inflater.needsDictionary())) {
                    break;
                }
                n += got;
            }
            if (n != size) {
                throw new MetadataException("Associated file '" + name + "' is truncated");
            }
            return out;
        } catch (DataFormatException e) {
            throw new MetadataException("Associated file '" + name + "' is corrupt", e);
        } finally {
            inflater.end();
        }
    }

    private static int checkedIndex(int base, long offset, long count, int length) {
        if (offset < 0 || count < 0 || offset + count > length) {
            throw new MetadataException("The model's associated-files zip is corrupt (offset " + offset + " out of range)");
        }
        return base + (int) offset;
    }

    private static byte[] bytes(ByteBuffer buf, int at, int count) {
        byte[] out = new byte[count];
        ByteBuffer view = buf.duplicate();
        // Through Buffer: ByteBuffer's covariant position(int) is missing on older Android releases.
        ((Buffer) view).position(at);
        view.get(out);
        return out;
    }

    private static int u16(ByteBuffer buf, int at) {
        return buf.getShort(at) & 0xFFFF;
    }

    private static long u32(ByteBuffer buf, int at) {
        return buf.getInt(at) & 0xFFFFFFFFL;
    }
}
