package dev.edgetl.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * Everything a model file carries about itself ({@code edgetl.json}): the JVM mirror of Python's
 * {@code edgetl.spec.ModelMetadata}.
 */
public final class ModelMetadata {
    /** Name of the JSON document zipped onto the end of each .tflite and written beside it as a sidecar. */
    public static final String FILE_NAME = "edgetl.json";

    private final List<String> labels;
    private final PreprocessingSpec preprocessing;
    private final String format;
    private final String backbone;
    private final String sourceRun;
    private final String edgetlVersion;

    public ModelMetadata(List<String> labels, PreprocessingSpec preprocessing, String format, String backbone,
                         String sourceRun, String edgetlVersion) {
        if (labels.isEmpty()) {
            throw new MetadataException("Model metadata has no labels. Received: labels=[]");
        }
        this.labels = Collections.unmodifiableList(new ArrayList<>(labels));
        this.preprocessing = preprocessing;
        this.format = format;
        this.backbone = backbone;
        this.sourceRun = sourceRun;
        this.edgetlVersion = edgetlVersion;
    }

    /**
     * Parses {@code edgetl.json} text.
     *
     * @throws MetadataException if the JSON is malformed or lacks {@code labels}/{@code preprocessing}
     */
    public static ModelMetadata fromJson(String json) {
        Map<String, Object> data = Json.parseObject(json);
        List<Object> rawLabels = Json.asList(Json.require(data, "labels"), "labels");
        List<String> labels = new ArrayList<>(rawLabels.size());
        for (Object label : rawLabels) {
            labels.add(String.valueOf(label));
        }
        PreprocessingSpec spec = PreprocessingSpec.fromMap(
                Json.asObject(Json.require(data, "preprocessing"), "preprocessing"));
        return new ModelMetadata(labels, spec,
                Json.optString(data, "format", ""),
                Json.optString(data, "backbone", ""),
                Json.optString(data, "source_run", ""),
                Json.optString(data, "edgetl_version", ""));
    }

    /** Parses UTF-8 bytes of {@code edgetl.json} (as read from the zip or an asset). */
    public static ModelMetadata fromJson(byte[] utf8) {
        return fromJson(Labels.decodeUtf8(utf8, FILE_NAME));
    }

    public List<String> labels() { return labels; }
    public PreprocessingSpec preprocessing() { return preprocessing; }
    public String format() { return format; }
    public String backbone() { return backbone; }
    public String sourceRun() { return sourceRun; }
    public String edgetlVersion() { return edgetlVersion; }
}
