package dev.edgetl.core;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** {@code labels.txt}: one class name per line in output-index order, as {@code edgetl.spec.read_labels} reads it. */
public final class Labels {
    private Labels() {}

    /**
     * Parses a labels file.
     *
     * <p>Lines end at {@code \n}, {@code \r\n} or {@code \r}; blank lines at the end are dropped;
     * each name is stripped of surrounding whitespace. Commas, inner spaces and any UTF-8 text
     * stay part of the name. A leading byte-order mark (which Windows editors add) is dropped.
     *
     * @throws MetadataException if the bytes are not UTF-8 or no label remains
     */
    public static List<String> parse(byte[] utf8) {
        String text = decodeUtf8(utf8, "labels.txt");
        if (text.startsWith("\uFEFF")) {
            text = text.substring(1);
        }
        List<String> lines = new ArrayList<>();
        int start = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '\n' || c == '\r') {
                lines.add(text.substring(start, i));
                if (c == '\r' && i + 1 < text.length() && text.charAt(i + 1) == '\n') {
                    i++;
                }
                start = i + 1;
            }
        }
        if (start < text.length()) {
            lines.add(text.substring(start));
        }
        while (!lines.isEmpty() && strip(lines.get(lines.size() - 1)).isEmpty()) {
            lines.remove(lines.size() - 1);
        }
        if (lines.isEmpty()) {
            throw new MetadataException("Labels file is empty: expected one class name per line.");
        }
        List<String> labels = new ArrayList<>(lines.size());
        for (String line : lines) {
            labels.add(strip(line));
        }
        return Collections.unmodifiableList(labels);
    }

    /**
     * Python's {@code str.strip()}: drops leading and trailing characters for which
     * {@code str.isspace()} holds (ASCII whitespace, U+001C..U+001F, U+0085 and Unicode space
     * separators such as U+00A0). Java's {@code String.strip()} differs (it keeps U+00A0) and is
     * missing below Android API 33, which this module must run on.
     */
    static String strip(String s) {
        int start = 0;
        int end = s.length();
        while (start < end && isPythonSpace(s.charAt(start))) {
            start++;
        }
        while (end > start && isPythonSpace(s.charAt(end - 1))) {
            end--;
        }
        return s.substring(start, end);
    }

    private static boolean isPythonSpace(char c) {
        return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == '\u0085';
    }

    /** Decodes strict UTF-8 (malformed bytes are an error, not replacement characters). */
    static String decodeUtf8(byte[] bytes, String what) {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new MetadataException(what + " is not valid UTF-8 text", e);
        }
    }
}
