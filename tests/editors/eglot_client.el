;;; eglot_client.el --- Drives lsp-llm from Emacs's eglot (1.9+), in batch mode.
;; Env: LSP_LLM_CMD (JSON array), LSP_LLM_SETTINGS (JSON), LSP_LLM_FILE, LSP_LLM_OUT.
;; Does what a user does: completion-at-point at the end of a line, then the
;; "Add docstring" code action, executed the way eglot executes a chosen action.
;; What the drivers share (the session, waiting, the JSON result): eglot_session.el.
(load (expand-file-name "eglot_session.el" (file-name-directory load-file-name)))

(lsp-llm-test-run
 (progn
      (lsp-llm-test-open)
      ;; the user has typed "    return 2 * " on line 9; completion-at-point there
      (goto-char (point-min))
      (forward-line 8)
      (forward-char 15)
      (delete-region (point) (line-end-position))
      (let ((before (buffer-substring (line-beginning-position) (point))))
        (completion-at-point)
        (push (cons 'line9_before before) lsp-llm-test-out)
        (push (cons 'line9 (buffer-substring (line-beginning-position) (line-end-position)))
              lsp-llm-test-out))
      ;; code actions on the stub `area' (line 5)
      (goto-char (point-min))
      (forward-line 4)
      (forward-char 4)
      (let* ((actions (eglot-code-actions (point) (point)))
             (chosen (cl-find "lsp-llm: Add docstring" actions
                              :key (lambda (a) (plist-get a :title)) :test #'equal))
             (server (eglot-current-server)))
        (push (cons 'actions (vconcat (mapcar (lambda (a) (plist-get a :title)) actions)))
              lsp-llm-test-out)
        (let ((command (plist-get chosen :command))
              (edit (plist-get chosen :edit)))
          (when edit (eglot--apply-workspace-edit edit))
          (when command
            (eglot-execute-command server (intern (plist-get command :command))
                                   (plist-get command :arguments)))))
      (lsp-llm-test-wait
       (lambda () (save-excursion (goto-char (point-min)) (forward-line 4)
                                  (looking-at-p "[ \t]*\"\"\"")))
       60)
      (goto-char (point-min))
      (forward-line 4)
      (push (cons 'line5 (buffer-substring (line-beginning-position) (line-end-position)))
            lsp-llm-test-out)
      (when (getenv "LSP_LLM_EVENTS")
        (with-current-buffer (jsonrpc-events-buffer (eglot-current-server))
          (write-region (point-min) (point-max) (getenv "LSP_LLM_EVENTS"))))
      (eglot-shutdown (eglot-current-server))))
