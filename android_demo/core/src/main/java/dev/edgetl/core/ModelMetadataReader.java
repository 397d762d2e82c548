package dev.edgetl.core;

import java.nio.ByteBuffer;
import java.util.Map;

/**
 * Finds a model's metadata the way {@code edgetl.runtime} does, so a new export drops in unchanged.
 *
 * <p>Order: the {@code edgetl.json} zipped onto the end of the .tflite; the sidecar
 * {@code model_<format>.json} shipped beside it; last, a bare {@code labels.txt} associated file
 * (models from other tools) with an RGB [0, 255] spec sized from the input tensor. That last
 * fallback cannot read normalization from the TFLite metadata flatbuffer, so it suits models that
 * take raw pixels (quantized models and edgetl-style float models).
 */
public final class ModelMetadataReader {
    private ModelMetadataReader() {}

    /** Where the metadata came from, for the app to show. */
    public enum Source { EMBEDDED, SIDECAR, LABELS_ONLY }

    /** Metadata plus its source. */
    public static final class Result {
        public final ModelMetadata metadata;
        public final Source source;

        Result(ModelMetadata metadata, Source source) {
            this.metadata = metadata;
            this.source = source;
        }
    }

    /**
     * @param model the whole .tflite (not modified)
     * @param sidecarJson UTF-8 {@code model_*.json} beside the model, or {@code null}
     * @param inputHeight height of the model's input tensor, used only by the labels-only fallback
     * @param inputWidth width of the model's input tensor, used only by the labels-only fallback
     * @throws MetadataException if no source has labels, or a present source is malformed
     */
    public static Result read(ByteBuffer model, byte[] sidecarJson, int inputHeight, int inputWidth) {
        Map<String, byte[]> files = AssociatedFiles.read(model);
        byte[] embedded = files.get(ModelMetadata.FILE_NAME);
        if (embedded != null) {
            return new Result(ModelMetadata.fromJson(embedded), Source.EMBEDDED);
        }
        if (sidecarJson != null) {
            return new Result(ModelMetadata.fromJson(sidecarJson), Source.SIDECAR);
        }
        byte[] labels = files.get("labels.txt");
        if (labels != null) {
            return new Result(new ModelMetadata(Labels.parse(labels), PreprocessingSpec.ofSize(inputHeight, inputWidth),
                    "", "", "", ""), Source.LABELS_ONLY);
        }
        throw new MetadataException("The model carries no metadata: expected edgetl.json or labels.txt zipped onto the "
                + ".tflite, or a sidecar model_<format>.json beside it. Re-export it with `edgetl export`.");
    }
}
