package dev.edgetl.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;

import java.util.Arrays;
import org.junit.Test;

public class MetadataTest {
    /** What {@code ModelMetadata.to_json()} writes (indent=2, ensure_ascii=False). */
    static final String EDGETL_JSON = "{\n"
            + "  \"labels\": [\n    \"cat\",\n    \"dog, big\",\n    \"\u00e9clair\"\n  ],\n"
            + "  \"preprocessing\": {\n"
            + "    \"image_size\": [\n      96,\n      128\n    ],\n"
            + "    \"color_order\": \"BGR\",\n"
            + "    \"mean\": [\n      0.0,\n      1.5,\n      2\n    ],\n"
            + "    \"std\": [\n      1.0,\n      1.0,\n      0.5\n    ],\n"
            + "    \"resize_method\": \"bilinear\",\n"
            + "    \"layout\": \"NCHW\",\n"
            + "    \"normalization\": \"mobilenet_v2: x / 127.5 - 1 inside the model\",\n"
            + "    \"spec_version\": 1\n"
            + "  },\n"
            + "  \"format\": \"tflite-int8\",\n  \"backbone\": \"mobilenet_v2\",\n"
            + "  \"source_run\": \"run_001\",\n  \"edgetl_version\": \"0.1.0\",\n"
            + "  \"extra\": {\"anything\": [1, {\"nested\": null}]}\n"
            + "}";

    @Test
    public void readsEveryField() {
        ModelMetadata m = ModelMetadata.fromJson(EDGETL_JSON);
        assertEquals(Arrays.asList("cat", "dog, big", "\u00e9clair"), m.labels());
        assertEquals("tflite-int8", m.format());
        assertEquals("mobilenet_v2", m.backbone());
        assertEquals("run_001", m.sourceRun());
        assertEquals("0.1.0", m.edgetlVersion());
        PreprocessingSpec p = m.preprocessing();
        assertEquals(96, p.height());
        assertEquals(128, p.width());
        assertEquals(PreprocessingSpec.ColorOrder.BGR, p.colorOrder());
        assertEquals(PreprocessingSpec.Layout.NCHW, p.layout());
        assertArrayEquals(new double[] {0, 1.5, 2}, p.mean(), 0);
        assertArrayEquals(new double[] {1, 1, 0.5}, p.std(), 0);
        assertEquals("bilinear", p.resizeMethod());
    }

    @Test
    public void appliesPythonDefaults() {
        PreprocessingSpec p = PreprocessingSpec.fromJson("{\"image_size\": [32, 40], \"future_key\": 1}");
        assertEquals(32, p.height());
        assertEquals(40, p.width());
        assertEquals(PreprocessingSpec.ColorOrder.RGB, p.colorOrder());
        assertEquals(PreprocessingSpec.Layout.NHWC, p.layout());
        assertArrayEquals(new double[] {0, 0, 0}, p.mean(), 0);
        assertArrayEquals(new double[] {1, 1, 1}, p.std(), 0);
    }

    @Test
    public void refusesWhatPythonRefuses() {
        String[] bad = {
            "{}",
            "{\"image_size\": [7, 32]}",
            "{\"image_size\": [32]}",
            "{\"image_size\": [32, 32], \"color_order\": \"rgb\"}",
            "{\"image_size\": [32, 32], \"layout\": \"HWC\"}",
            "{\"image_size\": [32, 32], \"resize_method\": \"nearest\"}",
            "{\"image_size\": [32, 32], \"std\": [1, 0, 1]}",
        };
        for (String json : bad) {
            assertThrows(json, MetadataException.class, () -> PreprocessingSpec.fromJson(json));
        }
        assertThrows(MetadataException.class, () -> ModelMetadata.fromJson("{\"preprocessing\": {\"image_size\": [32, 32]}}"));
        assertThrows(MetadataException.class, () -> ModelMetadata.fromJson("{\"labels\": [], \"preprocessing\": {\"image_size\": [32, 32]}}"));
    }
}
