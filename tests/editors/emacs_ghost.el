;;; emacs_ghost.el --- Drives editors/emacs/lsp-llm.el (ghost text) in batch mode.
;; Env: LSP_LLM_CMD (JSON array), LSP_LLM_SETTINGS (JSON), LSP_LLM_FILE, LSP_LLM_OUT,
;; LSP_LLM_PACKAGE (the folder of lsp-llm.el).
;; Batch Emacs runs no command loop, so what a keystroke does is done by hand: the
;; buffer edit, `this-command', then the mode's post-command hook.
(load (expand-file-name "eglot_session.el" (file-name-directory load-file-name)))
(add-to-list 'load-path (getenv "LSP_LLM_PACKAGE"))
(require 'lsp-llm)

(defun test-keystroke (char)
  "CHAR typed: inserted, then the post-command hook as the command loop runs it."
  (let ((this-command 'self-insert-command))
    (insert char)
    (run-hooks 'post-command-hook)))

(defun test-line ()
  (buffer-substring-no-properties (line-beginning-position) (line-end-position)))

(defun test-ghost-on-screen ()
  "The ghost text as displayed: the overlay's after-string or display."
  (let ((ov (cl-find-if (lambda (o) (overlay-get o 'lsp-llm)) (overlays-in (point-min) (point-max)))))
    (and ov (substring-no-properties (or (overlay-get ov 'after-string) (overlay-get ov 'display))))))

(lsp-llm-test-run
 (progn
      (lsp-llm-test-open)
      (lsp-llm-mode 1)
      ;; 1. the user has typed "    return 2 * " on line 9 and paused
      (goto-char (point-min))
      (forward-line 8)
      (forward-char 15)
      (delete-region (point) (line-end-position))
      (push (cons 'before (test-line)) lsp-llm-test-out)
      (lsp-llm-ask)
      (lsp-llm-test-wait (lambda () lsp-llm--ghost) 60)
      (push (cons 'ghost (plist-get lsp-llm--ghost :text)) lsp-llm-test-out)
      (push (cons 'shown (test-ghost-on-screen)) lsp-llm-test-out)
      (push (cons 'line_while_shown (test-line)) lsp-llm-test-out)
      (push (cons 'tab_bound (symbol-name (key-binding (kbd "TAB")))) lsp-llm-test-out)
      ;; 2. the user types the ghost text's first character: the rest stays, no new request
      (let ((first (substring (plist-get lsp-llm--ghost :text) 0 1)))
        (test-keystroke first)
        (push (cons 'typed first) lsp-llm-test-out)
        (push (cons 'shown_after_typing (test-ghost-on-screen)) lsp-llm-test-out)
        (push (cons 'pending_after_typing (if lsp-llm--pending t :json-false)) lsp-llm-test-out))
      ;; 3. TAB accepts it
      (let ((this-command 'lsp-llm-accept))
        (call-interactively (key-binding (kbd "TAB")))
        (run-hooks 'post-command-hook))
      (push (cons 'after_tab (test-line)) lsp-llm-test-out)
      (push (cons 'shown_after_tab (or (test-ghost-on-screen) :json-false)) lsp-llm-test-out)
      ;; 4. a keystroke while a request is in flight cancels it; its late answer is dropped
      (goto-char (point-min))
      (forward-line 12)
      (end-of-line)
      (lsp-llm-ask)
      (push (cons 'pending_before_keystroke (if lsp-llm--pending t :json-false)) lsp-llm-test-out)
      (test-keystroke " ")
      (push (cons 'pending_after_keystroke (if lsp-llm--pending t :json-false)) lsp-llm-test-out)
      (when lsp-llm--timer (cancel-timer lsp-llm--timer))
      (accept-process-output nil 3)
      (push (cons 'shown_after_cancel (or (test-ghost-on-screen) :json-false)) lsp-llm-test-out)
      (with-current-buffer (jsonrpc-events-buffer (eglot-current-server))
        (push (cons 'cancel_sent (if (save-excursion (goto-char (point-min))
                                                     (search-forward "$/cancelRequest" nil t))
                                     t :json-false))
              lsp-llm-test-out))
      (eglot-shutdown (eglot-current-server))))
