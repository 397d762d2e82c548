package dev.edgetl.core;

import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assume.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/**
 * The Pillow port on real photos at many sizes, and the zip reader on real .tflite files, against
 * fixtures the pytest writes with Pillow and Python's zipfile ({@code fixtures.json}).
 *
 * <p>Runs when the system property {@code edgetl.fixtures} names that directory.
 */
public class ResizeParityTest {
    private static Map<String, Object> fixtures(File dir) throws IOException {
        return Json.parseObject(new String(Files.readAllBytes(new File(dir, "fixtures.json").toPath()), StandardCharsets.UTF_8));
    }

    private static File dir() {
        String name = System.getProperty("edgetl.fixtures", "");
        assumeTrue("no fixtures directory given (-Dedgetl.fixtures=DIR)", !name.isEmpty());
        return new File(name);
    }

    @Test
    public void resizeMatchesPillowOnRealPhotos() throws IOException {
        File dir = dir();
        List<Object> cases = Json.asList(Json.require(fixtures(dir), "resize"), "resize");
        assertFalse("fixtures.json has no resize cases", cases.isEmpty());
        Map<String, PngPixels> sources = new HashMap<>();
        List<String> failures = new ArrayList<>();
        for (Object item : cases) {
            Map<String, Object> c = Json.asObject(item, "case");
            String file = Json.asString(Json.require(c, "file"), "file");
            PngPixels png = sources.get(file);
            if (png == null) {
                png = PngPixels.read(new File(dir, file));
                sources.put(file, png);
            }
            int w = (int) Json.asLong(Json.require(c, "width"), "width");
            int h = (int) Json.asLong(Json.require(c, "height"), "height");
            String got = Sha256.hex(PillowResize.resizeRgb(png.rgb, png.width, png.height, w, h));
            if (!got.equals(Json.asString(Json.require(c, "sha256"), "sha256"))) {
                failures.add(file + " " + png.width + "x" + png.height + " -> " + w + "x" + h
                        + (PillowResize.verticalFirst(png.width, png.height, w, h) ? " (vertical first)" : ""));
            }
        }
        System.out.println("ResizeParityTest: " + cases.size() + " resizes of " + sources.size() + " photos compared with Pillow");
        assertTrue(failures.size() + " of " + cases.size() + " resizes differ from Pillow:\n  " + String.join("\n  ", failures),
                failures.isEmpty());
    }

    @Test
    public void readsMetadataZippedOntoRealModels() throws IOException {
        File dir = dir();
        Object models = fixtures(dir).get("models");
        assumeTrue("fixtures.json lists no models", models != null);
        for (Object item : Json.asList(models, "models")) {
            Map<String, Object> m = Json.asObject(item, "model");
            File file = new File(dir, Json.asString(Json.require(m, "file"), "file"));
            ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(file.toPath()));
            ModelMetadataReader.Result result = ModelMetadataReader.read(bytes, null, 8, 8);
            assertTrue(file.getName() + " read from " + result.source, result.source == ModelMetadataReader.Source.EMBEDDED);
            List<Object> labels = Json.asList(Json.require(m, "labels"), "labels");
            assertTrue(file.getName() + ": labels " + result.metadata.labels() + " != " + labels,
                    result.metadata.labels().equals(labels));
            Map<String, byte[]> files = AssociatedFiles.read(bytes);
            assertTrue(file.getName() + ": labels.txt", Labels.parse(files.get("labels.txt")).equals(labels));
        }
    }
}
