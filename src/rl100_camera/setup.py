from setuptools import setup

package_name = 'rl100_camera'

setup(
    name=package_name,
    version='0.1.0',
    packages=[package_name],
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml', 'README.md']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='rl100 maintainers',
    maintainer_email='maintainers@rl100.dev',
    description=(
        'RealSense camera driver of the rl100 stack (realsense-ros compatible topics), with '
        'recording replay for tests and simulation.'
    ),
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'camera_node = rl100_camera.camera_node:main',
            'cloud_to_base = rl100_camera.cloud_to_base_node:main',
            'camera_check = rl100_camera.camera_check_node:main',
        ],
    },
)
