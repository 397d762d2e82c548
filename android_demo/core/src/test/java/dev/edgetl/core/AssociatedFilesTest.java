package dev.edgetl.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import org.junit.Test;

public class AssociatedFilesTest {
    static final byte[] LABELS = "cat\ndog, big\n\u00e9clair\n".getBytes(StandardCharsets.UTF_8);

    /** A stand-in flatbuffer: random bytes that happen to contain a fake end-of-directory signature. */
    static byte[] fakeModel() {
        byte[] model = new byte[5000];
        new Random(7).nextBytes(model);
        model[100] = 'P';
        model[101] = 'K';
        model[102] = 5;
        model[103] = 6;
        return model;
    }

    static byte[] zip(boolean deflateLabels) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ZipOutputStream zip = new ZipOutputStream(bytes)) {
            ZipEntry labels = new ZipEntry("labels.txt");
            if (!deflateLabels) {
                labels.setMethod(ZipEntry.STORED);
                labels.setSize(LABELS.length);
                CRC32 crc = new CRC32();
                crc.update(LABELS);
                labels.setCrc(crc.getValue());
            }
            zip.putNextEntry(labels);
            zip.write(LABELS);
            zip.closeEntry();
            zip.putNextEntry(new ZipEntry(ModelMetadata.FILE_NAME));
            zip.write(MetadataTest.EDGETL_JSON.getBytes(StandardCharsets.UTF_8));
            zip.closeEntry();
        }
        return bytes.toByteArray();
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /**
     * Rewrites a zip's offsets to count from the start of {@code prefix + zip}, which is what
     * Python's zipfile writes when it appends to an existing (non-zip) file in mode "a".
     */
    static byte[] withAbsoluteOffsets(byte[] prefix, byte[] zip) {
        ByteBuffer b = ByteBuffer.wrap(zip.clone()).order(ByteOrder.LITTLE_ENDIAN);
        int eocd = zip.length - 22;
        assertEquals(0x06054b50, b.getInt(eocd));
        int entries = b.getShort(eocd + 10) & 0xFFFF;
        int cd = b.getInt(eocd + 16);
        b.putInt(eocd + 16, cd + prefix.length);
        for (int i = 0, p = cd; i < entries; i++) {
            b.putInt(p + 42, b.getInt(p + 42) + prefix.length);
            p += 46 + (b.getShort(p + 28) & 0xFFFF) + (b.getShort(p + 30) & 0xFFFF) + (b.getShort(p + 32) & 0xFFFF);
        }
        return concat(prefix, b.array());
    }

    @Test
    public void readsAZipConcatenatedOntoTheModel() throws IOException {
        Map<String, byte[]> files = AssociatedFiles.read(concat(fakeModel(), zip(true)));
        assertEquals(Arrays.asList("labels.txt", "edgetl.json"), Arrays.asList(files.keySet().toArray()));
        assertArrayEquals(LABELS, files.get("labels.txt"));
        assertEquals(MetadataTest.EDGETL_JSON, new String(files.get("edgetl.json"), StandardCharsets.UTF_8));
    }

    @Test
    public void readsAZipAppendedWithAbsoluteOffsets() throws IOException {
        Map<String, byte[]> files = AssociatedFiles.read(withAbsoluteOffsets(fakeModel(), zip(false)));
        assertArrayEquals(LABELS, files.get("labels.txt"));
        assertEquals(3, ModelMetadata.fromJson(files.get("edgetl.json")).labels().size());
    }

    @Test
    public void readsFromABufferSliceWithoutMovingIt() throws IOException {
        byte[] model = concat(fakeModel(), zip(true));
        byte[] padded = concat(new byte[] {1, 2, 3}, model);
        ByteBuffer slice = ByteBuffer.wrap(padded, 3, model.length).slice();
        assertArrayEquals(LABELS, AssociatedFiles.read(slice).get("labels.txt"));
        assertEquals(0, slice.position());
        assertEquals(model.length, slice.limit());
    }

    @Test
    public void aModelWithoutZipHasNoFiles() {
        assertTrue(AssociatedFiles.read(fakeModel()).isEmpty());
        assertTrue(AssociatedFiles.read(new byte[0]).isEmpty());
    }

    @Test
    public void corruptArchivesAreErrors() throws IOException {
        byte[] model = concat(fakeModel(), zip(false));
        int at = indexOf(model, LABELS);
        model[at] ^= 1; // a stored byte flipped: the CRC check must catch it
        byte[] flipped = model;
        assertThrows(MetadataException.class, () -> AssociatedFiles.read(flipped));
        byte[] truncated = concat(fakeModel(), zip(true));
        byte[] cut = Arrays.copyOfRange(truncated, 0, truncated.length - 10);
        assertTrue(AssociatedFiles.read(cut).isEmpty()); // no end record left: not a zip at all
    }

    @Test
    public void metadataFallsBackFromEmbeddedToSidecarToLabels() throws IOException {
        byte[] embedded = concat(fakeModel(), zip(true));
        assertEquals(ModelMetadataReader.Source.EMBEDDED,
                ModelMetadataReader.read(ByteBuffer.wrap(embedded), null, 8, 8).source);

        byte[] sidecar = MetadataTest.EDGETL_JSON.getBytes(StandardCharsets.UTF_8);
        ModelMetadataReader.Result fromSidecar = ModelMetadataReader.read(ByteBuffer.wrap(fakeModel()), sidecar, 8, 8);
        assertEquals(ModelMetadataReader.Source.SIDECAR, fromSidecar.source);
        assertEquals(96, fromSidecar.metadata.preprocessing().height());

        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ZipOutputStream zip = new ZipOutputStream(bytes)) {
            zip.putNextEntry(new ZipEntry("labels.txt"));
            zip.write(LABELS);
            zip.closeEntry();
        }
        ModelMetadataReader.Result labelsOnly =
                ModelMetadataReader.read(ByteBuffer.wrap(concat(fakeModel(), bytes.toByteArray())), null, 224, 160);
        assertEquals(ModelMetadataReader.Source.LABELS_ONLY, labelsOnly.source);
        assertEquals(3, labelsOnly.metadata.labels().size());
        assertEquals(224, labelsOnly.metadata.preprocessing().height());
        assertEquals(160, labelsOnly.metadata.preprocessing().width());

        assertThrows(MetadataException.class, () -> ModelMetadataReader.read(ByteBuffer.wrap(fakeModel()), null, 8, 8));
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = haystack.length - needle.length; i >= 0; i--) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        throw new AssertionError("not found");
    }
}
