package dev.edgetl.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.Test;

public class JsonTest {
    @Test
    public void parsesWhatPythonJsonDumpsWrites() {
        Map<String, Object> o = Json.parseObject("{\n \"a\": [1, -2, 3.5, 1e-05, -0.0, 2E3],\n \"b\": {\"c\": true, \"d\": false, \"e\": null},"
                + " \"nan\": NaN, \"inf\": Infinity, \"ninf\": -Infinity, \"big\": 12345678901234567890}");
        assertEquals(Arrays.asList(1L, -2L, 3.5, 1e-5, -0.0, 2000.0), o.get("a"));
        @SuppressWarnings("unchecked")
        Map<String, Object> b = (Map<String, Object>) o.get("b");
        assertEquals(Boolean.TRUE, b.get("c"));
        assertEquals(Boolean.FALSE, b.get("d"));
        assertTrue(b.containsKey("e"));
        assertNull(b.get("e"));
        assertTrue(Double.isNaN((Double) o.get("nan")));
        assertEquals(Double.POSITIVE_INFINITY, o.get("inf"));
        assertEquals(Double.NEGATIVE_INFINITY, o.get("ninf"));
        assertEquals(1.2345678901234567e19, (Double) o.get("big"), 1e4);
        assertEquals(Arrays.asList("a", "b", "nan", "inf", "ninf", "big"), List.copyOf(o.keySet())); // order kept
    }

    @Test
    public void decodesEscapesAndUnicode() {
        Object s = Json.parse("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\udc31 caf\u00e9 \u65e5\u672c\"");
        assertEquals("q\" b\\ s/ \b\f\n\r\t \u00e9 \ud83d\udc31 caf\u00e9 \u65e5\u672c", s);
    }

    @Test
    public void rejectsMalformedDocuments() {
        for (String bad : new String[] {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "\"open", "[1] x", "tru", "01x", "-", "{1:2}",
                "\"tab\there\"", "[\"\\x\"]"}) {
            assertThrows(bad, MetadataException.class, () -> Json.parse(bad));
        }
        assertThrows(MetadataException.class, () -> Json.parseObject("[1]"));
    }

    @Test
    public void refusesAbsurdNesting() {
        String deep = "[".repeat(1000) + "]".repeat(1000);
        assertThrows(MetadataException.class, () -> Json.parse(deep));
    }
}
