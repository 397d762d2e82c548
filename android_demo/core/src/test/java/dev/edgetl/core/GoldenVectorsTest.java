package dev.edgetl.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assume.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/**
 * Parity with the Python runtime through the golden vectors export writes
 * ({@code RUN_DIR/export/golden/}, format in docs/ARCHITECTURE.md).
 *
 * <p>Runs when the system property {@code edgetl.golden} names a golden directory
 * ({@code run_tests.sh GOLDEN_DIR} sets it). Every image and artefact is checked, then all
 * differences are reported together.
 */
public class GoldenVectorsTest {
    private static final double SCORE_TOLERANCE = 1e-6;

    @Test
    public void jvmPreprocessingAndPostprocessingMatchTheGoldenVectors() throws IOException {
        String dirName = System.getProperty("edgetl.golden", "");
        assumeTrue("no golden directory given (-Dedgetl.golden=DIR)", !dirName.isEmpty());
        File dir = new File(dirName);
        Map<String, Object> golden = Json.parseObject(
                new String(Files.readAllBytes(new File(dir, "golden.json").toPath()), StandardCharsets.UTF_8));
        assertEquals("golden_version", 1L, Json.asLong(Json.require(golden, "golden_version"), "golden_version"));
        List<String> labels = new ArrayList<>();
        for (Object label : Json.asList(Json.require(golden, "labels"), "labels")) {
            labels.add(Json.asString(label, "label"));
        }
        PreprocessingSpec spec = PreprocessingSpec.fromMap(Json.asObject(Json.require(golden, "preprocessing"), "preprocessing"));
        List<String> failures = new ArrayList<>();
        int checks = 0;

        Map<String, byte[]> pixelsByImage = new HashMap<>();
        List<Object> images = Json.asList(Json.require(golden, "images"), "images");
        assertFalse("golden.json lists no images", images.isEmpty());
        for (Object item : images) {
            Map<String, Object> image = Json.asObject(item, "image");
            String file = Json.asString(Json.require(image, "file"), "file");
            PngPixels png = PngPixels.read(new File(dir, file));
            byte[] pixels = Preprocessor.pixels(png.rgb, png.width, png.height, spec);
            pixelsByImage.put(file, pixels);
            List<Object> shape = Json.asList(Json.require(image, "pixels_shape"), "pixels_shape");
            if (Json.asLong(shape.get(0), "H") != spec.height() || Json.asLong(shape.get(1), "W") != spec.width()) {
                failures.add(file + ": pixels_shape " + shape + " differs from the spec's size");
            }
            String want = Json.asString(Json.require(image, "pixels_sha256"), "pixels_sha256");
            if (!want.equals(Sha256.hex(pixels))) {
                failures.add(file + " (" + png.width + "x" + png.height + " -> " + spec.width() + "x" + spec.height()
                        + "): resized pixels differ from Python (pixels_sha256)");
            }
            checks++;
        }

        Map<String, Object> artefacts = Json.asObject(Json.require(golden, "artefacts"), "artefacts");
        assertFalse("golden.json lists no artefacts", artefacts.isEmpty());
        for (Map.Entry<String, Object> entry : artefacts.entrySet()) {
            String name = entry.getKey();
            Map<String, Object> artefact = Json.asObject(entry.getValue(), name);
            TensorSpec input = tensorSpec(Json.asObject(Json.require(artefact, "input"), "input"));
            TensorSpec output = tensorSpec(Json.asObject(Json.require(artefact, "output"), "output"));
            for (Object r : Json.asList(Json.require(artefact, "results"), "results")) {
                Map<String, Object> result = Json.asObject(r, "result");
                String image = Json.asString(Json.require(result, "image"), "image");
                String where = name + " / " + image + ": ";
                byte[] pixels = pixelsByImage.get(image);
                if (pixels == null) {
                    failures.add(where + "result for an image not listed in images[]");
                    continue;
                }
                byte[] tensor = Preprocessor.inputTensor(pixels, spec, input);
                if (!Json.asString(Json.require(result, "input_sha256"), "input_sha256").equals(Sha256.hex(tensor))) {
                    failures.add(where + "input tensor differs from Python (input_sha256), " + input);
                }
                List<Object> rawList = Json.asList(Json.require(result, "raw_output"), "raw_output");
                double[] raw = new double[rawList.size()];
                for (int i = 0; i < raw.length; i++) {
                    raw[i] = Json.asDouble(rawList.get(i), "raw_output[" + i + "]");
                }
                float[] scores = Preprocessor.dequantize(raw, output);
                List<Object> expected = Json.asList(Json.require(result, "top_k"), "top_k");
                List<TopK.Prediction> got = TopK.of(scores, expected.size(), labels);
                for (int i = 0; i < expected.size(); i++) {
                    Map<String, Object> want = Json.asObject(expected.get(i), "top_k[" + i + "]");
                    long index = Json.asLong(Json.require(want, "index"), "index");
                    double score = Json.asDouble(Json.require(want, "score"), "score");
                    TopK.Prediction p = got.get(i);
                    if (p.index != index) {
                        failures.add(where + "top-" + (i + 1) + " index " + p.index + " != golden " + index);
                    } else if (Math.abs(p.score - score) > SCORE_TOLERANCE) {
                        failures.add(where + "top-" + (i + 1) + " score " + p.score + " != golden " + score);
                    } else if (want.containsKey("label") && !p.label.equals(want.get("label"))) {
                        failures.add(where + "top-" + (i + 1) + " label " + p.label + " != golden " + want.get("label"));
                    }
                }
                checks++;
            }
        }
        System.out.println("GoldenVectorsTest: " + checks + " checks (" + images.size() + " images, "
                + artefacts.size() + " artefacts " + artefacts.keySet() + ") in " + dir);
        assertTrue("Golden-vector mismatches:\n  " + String.join("\n  ", failures), failures.isEmpty());
    }

    static TensorSpec tensorSpec(Map<String, Object> info) {
        Object scale = info.get("scale");
        Object zeroPoint = info.get("zero_point");
        int[] shape = null;
        if (info.get("shape") != null) {
            List<Object> dims = Json.asList(info.get("shape"), "shape");
            shape = new int[dims.size()];
            for (int i = 0; i < shape.length; i++) {
                shape[i] = (int) Json.asLong(dims.get(i), "shape[" + i + "]");
            }
        }
        return new TensorSpec(TensorSpec.DataType.fromNumpyName(Json.asString(Json.require(info, "dtype"), "dtype")),
                scale == null ? 0.0 : Json.asDouble(scale, "scale"),
                zeroPoint == null ? 0 : (int) Json.asLong(zeroPoint, "zero_point"),
                shape);
    }
}
