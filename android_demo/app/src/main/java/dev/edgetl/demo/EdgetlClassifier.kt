package dev.edgetl.demo

import android.content.res.AssetManager
import android.os.SystemClock
import dev.edgetl.core.MetadataException
import dev.edgetl.core.ModelMetadata
import dev.edgetl.core.ModelMetadataReader
import dev.edgetl.core.PreprocessingSpec
import dev.edgetl.core.Preprocessor
import dev.edgetl.core.TensorSpec
import dev.edgetl.core.TopK
import java.io.Closeable
import java.io.FileInputStream
import java.nio.Buffer
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.channels.FileChannel
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor

/**
 * One .tflite classifier: a single LiteRT [Interpreter] plus the metadata that says how to feed it.
 *
 * Labels and preprocessing come from the model itself (the `edgetl.json` zipped onto the
 * .tflite, else a sidecar `model*.json` asset, else a bare `labels.txt`), so a new export drops
 * into `assets/` without code changes. The pixel maths is the JVM core's port of the Python
 * runtime, checked against its golden vectors.
 *
 * Not thread-safe: create, use and close it on one thread (the app's inference executor).
 */
class EdgetlClassifier private constructor(
    private val interpreter: Interpreter,
    val metadata: ModelMetadata,
    val metadataSource: ModelMetadataReader.Source,
    private val input: TensorSpec,
    private val output: TensorSpec,
) : Closeable {

    /** Top-k predictions of one image and where the time went. */
    data class Result(val predictions: List<TopK.Prediction>, val preprocessMs: Double, val inferenceMs: Double)

    val spec: PreprocessingSpec get() = metadata.preprocessing()

    private val inputBuffer: ByteBuffer =
        ByteBuffer.allocateDirect(input.shape().fold(1) { a, b -> a * b } * input.dataType().bytes)
            .order(ByteOrder.nativeOrder())
    private val outputBuffer: ByteBuffer =
        ByteBuffer.allocateDirect(output.shape().fold(1) { a, b -> a * b } * output.dataType().bytes)
            .order(ByteOrder.nativeOrder())

    /**
     * Classifies upright RGB pixels of any size: Pillow-exact bilinear resize to the model's size,
     * colour order, normalization and quantization, inference, dequantization, top-k.
     */
    fun classify(rgb: ByteArray, width: Int, height: Int, k: Int = 3): Result {
        val start = SystemClock.elapsedRealtimeNanos()
        val pixels = Preprocessor.pixels(rgb, width, height, spec)
        val tensor = Preprocessor.inputTensor(pixels, spec, input) // little-endian, as every Android ABI
        (inputBuffer as Buffer).clear()
        inputBuffer.put(tensor)
        (inputBuffer as Buffer).rewind()
        (outputBuffer as Buffer).clear()
        val ready = SystemClock.elapsedRealtimeNanos()
        interpreter.run(inputBuffer, outputBuffer)
        val done = SystemClock.elapsedRealtimeNanos()
        (outputBuffer as Buffer).rewind()
        val raw = ByteArray(outputBuffer.remaining())
        outputBuffer.get(raw)
        val scores = Preprocessor.dequantize(raw, output)
        return Result(TopK.of(scores, k, metadata.labels()), (ready - start) / 1e6, (done - ready) / 1e6)
    }

    override fun close() = interpreter.close()

    companion object {
        const val MODEL_ASSET = "model.tflite"

        /**
         * Loads `assets/model.tflite` (memory-mapped; the build stores .tflite uncompressed).
         *
         * @throws java.io.FileNotFoundException if there is no model asset
         * @throws MetadataException if the model carries no usable metadata or it contradicts the tensors
         */
        fun fromAssets(assets: AssetManager, numThreads: Int = 4): EdgetlClassifier {
            val model = assets.openFd(MODEL_ASSET).use { fd ->
                FileInputStream(fd.fileDescriptor).use { stream ->
                    stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                }
            }
            val interpreter = Interpreter(model, Interpreter.Options().setNumThreads(numThreads))
            try {
                val inputTensor = interpreter.getInputTensor(0)
                val outputTensor = interpreter.getOutputTensor(0)
                val shape = inputTensor.shape()
                if (shape.size != 4 || (shape[3] != 3 && shape[1] != 3)) {
                    throw MetadataException("The model's input is not an RGB image. Received: input shape ${shape.contentToString()}")
                }
                val nchw = shape[3] != 3
                val height = if (nchw) shape[2] else shape[1]
                val width = if (nchw) shape[3] else shape[2]
                val found = ModelMetadataReader.read(model, readSidecar(assets), height, width)
                val spec = found.metadata.preprocessing()
                if (spec.height() != height || spec.width() != width || (spec.layout() == PreprocessingSpec.Layout.NCHW) != nchw) {
                    throw MetadataException(
                        "The model's metadata does not match its input tensor: metadata says ${spec.layout()} " +
                            "${spec.height()}x${spec.width()}. Received: input shape ${shape.contentToString()}",
                    )
                }
                val classes = outputTensor.numElements()
                if (classes != found.metadata.labels().size) {
                    throw MetadataException(
                        "The model has $classes outputs but ${found.metadata.labels().size} labels. Re-export it with `edgetl export`.",
                    )
                }
                return EdgetlClassifier(interpreter, found.metadata, found.source, tensorSpec(inputTensor), tensorSpec(outputTensor))
            } catch (e: Exception) {
                interpreter.close()
                throw e
            }
        }

        /** The sidecar `model*.json` shipped beside the model, if any (a copy of its edgetl.json). */
        private fun readSidecar(assets: AssetManager): ByteArray? {
            val name = assets.list("")?.sorted()?.firstOrNull { it.startsWith("model") && it.endsWith(".json") } ?: return null
            return assets.open(name).use { it.readBytes() }
        }

        private fun tensorSpec(tensor: Tensor): TensorSpec {
            val type = when (tensor.dataType()) {
                DataType.FLOAT32 -> TensorSpec.DataType.FLOAT32
                DataType.UINT8 -> TensorSpec.DataType.UINT8
                DataType.INT8 -> TensorSpec.DataType.INT8
                else -> throw MetadataException("Unsupported tensor type. Received: ${tensor.dataType()} (supported: float32, uint8, int8)")
            }
            val params = tensor.quantizationParams()
            return TensorSpec(type, params.scale.toDouble(), params.zeroPoint, tensor.shape())
        }
    }
}
