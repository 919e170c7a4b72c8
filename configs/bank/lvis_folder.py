# Bank from images on disk (retrieved or web images), one folder per class named like the
# category (data/lvis_retrieved/<name>/*.jpg). No prompts or seeds; a corrupt image is reported
# and skipped; a class without a folder gets no instances (listed in the report).
#   python tools/bank/build.py configs/bank/lvis_folder.py
_base_ = ['./lvis_sd15.py']

images_per_class = None  # every image of each folder
source = dict(_delete_=True, type='FolderSource', root='data/lvis_retrieved', max_side=1024)
filter = dict(min_clip=21.0, tolerance=1.0)
