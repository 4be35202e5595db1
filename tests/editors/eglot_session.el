;;; eglot_session.el --- What the batch-mode Emacs drivers share.
;; Env: LSP_LLM_CMD (JSON array), LSP_LLM_SETTINGS (JSON), LSP_LLM_FILE, LSP_LLM_OUT.
;; `lsp-llm-test-open' opens the file in python-mode with eglot connected to lsp-llm and
;; waits for the model; the driver pushes (KEY . VALUE) pairs on `lsp-llm-test-out', which
;; `lsp-llm-test-finish' writes as JSON before Emacs exits.
(require 'eglot)
(require 'json)

(defvar lsp-llm-test-status nil)
(defvar lsp-llm-test-out nil)

(cl-defmethod eglot-handle-notification
  (_server (_method (eql lspLlm/status)) &rest params)
  (setq lsp-llm-test-status (plist-get params :state)))

(defun lsp-llm-test-finish (code)
  (with-temp-file (getenv "LSP_LLM_OUT")
    (insert (json-encode lsp-llm-test-out)))
  (kill-emacs code))

(defun lsp-llm-test-wait (pred seconds)
  (let ((deadline (+ (float-time) seconds)))
    (while (and (not (funcall pred)) (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (funcall pred)))

(setq eglot-confirm-server-initiated-edits nil
      eglot-sync-connect t
      eglot-autoshutdown nil)

(defun lsp-llm-test-open ()
  "Open LSP_LLM_FILE with eglot on lsp-llm; exit with an error if the model is not ready."
  (let* ((cmd (append (json-parse-string (getenv "LSP_LLM_CMD")) nil))
         (settings (json-parse-string (getenv "LSP_LLM_SETTINGS") :object-type 'plist))
         (contact (append cmd (list :initializationOptions settings))))
    (find-file (getenv "LSP_LLM_FILE"))
    (python-mode)
    (eglot '(python-mode) (cons 'transient default-directory) 'eglot-lsp-server contact
           "python")
    (unless (lsp-llm-test-wait (lambda () (member lsp-llm-test-status '("ready" "error"))) 120)
      (push '(error . "model not ready") lsp-llm-test-out)
      (lsp-llm-test-finish 1))
    (push (cons 'status lsp-llm-test-status) lsp-llm-test-out)))

(defmacro lsp-llm-test-run (&rest body)
  "Run BODY; write what it pushed and exit 0, or 1 with the error it raised."
  `(condition-case err
       (progn ,@body (lsp-llm-test-finish 0))
     (error
      (push (cons 'error (format "%S" err)) lsp-llm-test-out)
      (lsp-llm-test-finish 1))))
