package dev.edgetl.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.Test;

public class LabelsTest {
    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    public void keepsCommasSpacesAndUnicodeInNames() {
        assertEquals(Arrays.asList("golden retriever", "cat, tabby", "caf\u00e9 cr\u00e8me", "\u732b"),
                Labels.parse(utf8("golden retriever\ncat, tabby\ncaf\u00e9 cr\u00e8me\n\u732b\n")));
    }

    @Test
    public void dropsTrailingBlankLinesAndStripsNames() {
        assertEquals(Arrays.asList("a", "b"), Labels.parse(utf8("  a \t\r\nb\r\n\r\n   \n\n")));
        assertEquals(Arrays.asList("a", "b"), Labels.parse(utf8("a\rb")));
        assertEquals(Arrays.asList("a", "", "b"), Labels.parse(utf8("a\n\nb\n"))); // inner blank lines keep their index
    }

    @Test
    public void dropsAByteOrderMark() {
        assertEquals(Arrays.asList("x", "y"), Labels.parse(utf8("\uFEFFx\ny")));
    }

    @Test
    public void rejectsEmptyFilesAndBadUtf8() {
        assertThrows(MetadataException.class, () -> Labels.parse(utf8("\n \n")));
        assertThrows(MetadataException.class, () -> Labels.parse(new byte[] {'a', (byte) 0xC3, '\n'}));
    }
}
