package dev.edgetl.demo

import android.Manifest
import android.content.pm.PackageManager
import android.net.Uri
import android.os.Bundle
import android.util.Log
import android.view.View
import android.widget.Button
import android.widget.ImageView
import android.widget.TextView
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import dev.edgetl.core.TopK
import java.io.FileNotFoundException
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Live camera classification (CameraX preview + analysis) and classification of a picked photo
 * (Photo Picker), showing the top-3 labels, scores and time.
 *
 * Threading: one single-thread executor owns the model. It loads the classifier, runs the camera
 * analyzer and classifies picked photos, so the one Interpreter is only ever touched from that
 * thread; results go to the UI with runOnUiThread. Frames that arrive while the analyzer is busy
 * are dropped (STRATEGY_KEEP_ONLY_LATEST).
 */
class MainActivity : AppCompatActivity() {
    private lateinit var previewView: PreviewView
    private lateinit var photoView: ImageView
    private lateinit var resultsView: TextView
    private lateinit var timingView: TextView
    private lateinit var modelInfoView: TextView
    private lateinit var backButton: Button

    private val inference: ExecutorService = Executors.newSingleThreadExecutor()

    /** Touched only on [inference]. */
    private var classifier: EdgetlClassifier? = null

    /** While a picked photo is shown, camera frames are not classified. */
    @Volatile private var showingPhoto = false

    private var imageAnalysis: ImageAnalysis? = null

    private val requestCamera =
        registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
            if (granted) startCamera() else resultsView.setText(R.string.camera_denied)
        }

    private val pickPhoto =
        registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri: Uri? ->
            if (uri != null) classifyPhoto(uri)
        }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        previewView = findViewById(R.id.preview)
        photoView = findViewById(R.id.photo)
        resultsView = findViewById(R.id.results)
        timingView = findViewById(R.id.timing)
        modelInfoView = findViewById(R.id.model_info)
        backButton = findViewById(R.id.back)

        findViewById<Button>(R.id.pick).setOnClickListener {
            pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        backButton.setOnClickListener { showCamera() }

        inference.execute(::loadModel)
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            requestCamera.launch(Manifest.permission.CAMERA)
        }
    }

    /** Runs on [inference]. */
    private fun loadModel() {
        try {
            val loaded = EdgetlClassifier.fromAssets(assets)
            classifier = loaded
            val spec = loaded.spec
            val info = getString(
                R.string.model_info,
                loaded.metadata.format().ifEmpty { EdgetlClassifier.MODEL_ASSET },
                loaded.metadata.labels().size,
                spec.width(),
                spec.height(),
                spec.colorOrder(),
                loaded.metadataSource.name.lowercase(Locale.ROOT),
            )
            runOnUiThread {
                modelInfoView.text = info
                resultsView.text = ""
            }
        } catch (e: FileNotFoundException) {
            Log.e(TAG, "No model asset", e)
            runOnUiThread { resultsView.setText(R.string.no_model) }
        } catch (e: Exception) {
            // A corrupt model or metadata: show the reason instead of crashing.
            Log.e(TAG, "Cannot load the model", e)
            runOnUiThread { resultsView.text = e.message ?: e.toString() }
        }
    }

    private fun startCamera() {
        val providerFuture = ProcessCameraProvider.getInstance(this)
        providerFuture.addListener({
            val provider = providerFuture.get()
            val preview = Preview.Builder().build().also { it.setSurfaceProvider(previewView.surfaceProvider) }
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(inference, ::analyze)
            imageAnalysis = analysis
            try {
                provider.unbindAll()
                provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis)
            } catch (e: Exception) {
                Log.e(TAG, "Cannot start the camera", e)
                resultsView.text = e.message ?: e.toString()
            }
        }, ContextCompat.getMainExecutor(this))
    }

    /** Runs on [inference], once per frame CameraX delivers. */
    private fun analyze(image: ImageProxy) {
        image.use {
            val model = classifier ?: return
            if (showingPhoto) return
            val frame = it.toUprightRgb()
            val result = model.classify(frame.pixels, frame.width, frame.height)
            if (!showingPhoto) runOnUiThread { show(result) }
        }
    }

    private fun classifyPhoto(uri: Uri) {
        showingPhoto = true
        backButton.visibility = View.VISIBLE
        inference.execute {
            try {
                val model = classifier ?: return@execute
                val photo = decodeUprightRgb(contentResolver, uri)
                val result = model.classify(photo.pixels, photo.width, photo.height)
                val bitmap = photo.toDisplayBitmap()
                runOnUiThread {
                    if (showingPhoto) {
                        photoView.setImageBitmap(bitmap)
                        photoView.visibility = View.VISIBLE
                        show(result)
                    }
                }
            } catch (e: Exception) {
                Log.e(TAG, "Cannot classify $uri", e)
                runOnUiThread { resultsView.text = e.message ?: e.toString() }
            }
        }
    }

    private fun showCamera() {
        showingPhoto = false
        photoView.setImageDrawable(null)
        photoView.visibility = View.GONE
        backButton.visibility = View.GONE
    }

    private fun show(result: EdgetlClassifier.Result) {
        resultsView.text = result.predictions.joinToString("\n") { p: TopK.Prediction ->
            String.format(Locale.ROOT, "%5.1f%%  %s", p.score * 100f, p.label)
        }
        timingView.text = getString(R.string.timing, result.preprocessMs, result.inferenceMs)
    }

    override fun onDestroy() {
        imageAnalysis?.clearAnalyzer()
        // Close the Interpreter on the thread that uses it, after any queued frame or photo.
        inference.execute {
            classifier?.close()
            classifier = null
        }
        inference.shutdown()
        super.onDestroy()
    }

    private companion object {
        const val TAG = "edgetl-demo"
    }
}
